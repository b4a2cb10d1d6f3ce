import Foundation
import Testing
import TetherJSON
import TetherModel

@testable import TetherPlugin
@testable import WorkloadsPlugin

/// What the tables print, as kube-apiserver's do.
@Suite("printer columns")
struct PrinterColumnTests {
    @Test(
        "ages and durations read as apimachinery's HumanDuration writes them",
        arguments: [
            (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (119, "119s"), (120, "2m"), (200, "3m20s"), (599, "9m59s"), (600, "10m"),
            (10_799, "179m"), (10_800, "3h"), (11_100, "3h5m"), (28_799, "7h59m"), (28_800, "8h"), (172_799, "47h"), (172_800, "2d"),
            (183_600, "2d3h"), (691_200, "8d"), (63_071_999, "729d"), (63_072_000, "2y"), (65_664_000, "2y30d"), (252_288_000, "8y"),
        ])
    func humanDuration(seconds: Int, expected: String) {
        #expect(ObjectAge.human(seconds: seconds) == expected)
    }

    @Test("label selectors and label maps as kubectl prints them")
    func selectors() throws {
        let selector: JSONValue = [
            "matchLabels": ["tier": "web", "app": "shop"],
            "matchExpressions": [
                ["key": "zone", "operator": "In", "values": ["b", "a"]], ["key": "canary", "operator": "DoesNotExist"],
                ["key": "env", "operator": "NotIn", "values": ["dev"]], ["key": "gpu", "operator": "Exists"],
            ],
        ]
        #expect(LabelSelectorText.format(selector) == "app=shop,!canary,env notin (dev),gpu,tier=web,zone in (a,b)")
        #expect(LabelSelectorText.format(nil) == "<none>")
        #expect(LabelSelectorText.labels(["b": "2", "a": "1"]) == "a=1,b=2")
        #expect(LabelSelectorText.labels([:]) == "<none>")
    }

    @Test("a Job's STATUS, COMPLETIONS and DURATION")
    func jobColumns() {
        let now = Date(timeIntervalSince1970: 1_800_000_300)
        var job: JSONValue = ["kind": "Job", "spec": ["parallelism": 3], "status": ["startTime": "2027-01-15T08:00:00Z"]]
        #expect(WorkloadsPlugin.jobStatus(job) == "Running")
        #expect(WorkloadsPlugin.jobCompletions(job) == "0/1 of 3")
        #expect(WorkloadsPlugin.jobDuration(job, now: now) == "5m")
        job[member: "spec"] = ["completions": 4]
        job[member: "status"] = [
            "startTime": "2027-01-15T08:00:00Z", "completionTime": "2027-01-15T08:00:42Z", "succeeded": 4,
            "conditions": [["type": "Complete", "status": "True"]],
        ]
        #expect(WorkloadsPlugin.jobStatus(job) == "Complete")
        #expect(WorkloadsPlugin.jobCompletions(job) == "4/4")
        #expect(WorkloadsPlugin.jobDuration(job, now: now) == "42s")
        job[member: "status"] = ["conditions": [["type": "Suspended", "status": "True"], ["type": "Failed", "status": "False"]]]
        #expect(WorkloadsPlugin.jobStatus(job) == "Suspended")
        #expect(WorkloadsPlugin.jobDuration(job, now: now) == "")
    }
}
