import Testing
import TetherJSON
import TetherModel

@testable import TetherPlugin

/// The CEL subset of CustomResourceDefinition validation rules: what rules published in
/// common definitions evaluate to, CEL's error rules (`&&`/`||` absorb an error on the decisive
/// side), and what is refused as outside the subset.
@Suite("CEL validation rules")
struct CELTests {
    static let object: JSONValue = [
        "minReplicas": 2, "maxReplicas": 5, "name": "web-frontend", "mode": "blue", "ratio": .double(0.5),
        "ports": [["name": "http", "port": 80], ["name": "https", "port": 443]],
        "labels": ["tier": "web", "team": "a"], "tags": ["a", "b", "c"], "empty": [],
    ]

    static func evaluate(_ rule: String, _ value: JSONValue = object) throws -> JSONValue {
        var evaluator = CELEvaluator()
        return try evaluator.evaluate(try CELExpression(parsing: rule), bindings: ["self": value])
    }

    @Test(
        "rules evaluate as kube-apiserver evaluates them",
        arguments: [
            ("self.minReplicas <= self.maxReplicas", true),
            ("self.minReplicas > self.maxReplicas", false),
            ("has(self.mode) && self.mode in ['blue', 'green']", true),
            ("!has(self.absent) || self.absent > 0", true),
            ("self.name.startsWith('web-') && self.name.endsWith('frontend') && self.name.contains('-')", true),
            ("self.name.matches('^[a-z]+(-[a-z]+)*$')", true),
            ("size(self.name) <= 12 && self.tags.size() == 3", true),
            ("self.ports.all(p, p.port > 0 && p.port < 65536)", true),
            ("self.ports.exists(p, p.name == 'https')", true),
            ("self.ports.exists_one(p, p.port == 80)", true),
            ("self.ports.map(p, p.port) == [80, 443]", true),
            ("self.ports.filter(p, p.port > 100).size() == 1", true),
            ("self.labels.all(k, k.size() <= 4)", true),
            ("'tier' in self.labels && self.labels['tier'] == 'web'", true),
            ("self.tags[0] + self.tags[2] == 'ac'", true),
            (
                "self.maxReplicas - self.minReplicas == 3 && self.maxReplicas * 2 == 10 && self.maxReplicas / 2 == 2 && self.maxReplicas % 2 == 1",
                true
            ),
            ("self.ratio * 2.0 == 1.0 && double(self.minReplicas) == 2.0 && int(self.ratio) == 0", true),
            ("self.minReplicas == 2.0", true),
            ("self.empty.size() == 0 ? true : self.empty[0] == 1", true),
            ("string(self.minReplicas) + '/' + string(self.maxReplicas) == '2/5'", true),
            ("self.tags.isSorted() && self.ports.map(p, p.port).max() == 443 && [1, 2, 3].sum() == 6", true),
            ("self.name.lowerAscii() == 'web-frontend' && 'A b'.upperAscii() == 'A B'", true),
            ("{'a': 1}.a == 1 && [1, 2] + [3] == [1, 2, 3]", true),
            // An error on the side that does not decide is absorbed, as CEL specifies.
            ("self.absent == 1 || true", true),
            ("false && self.absent == 1", false),
            ("self.tags.exists(t, t == 'c') || self.missing", true),
        ])
    func rules(rule: String, expected: Bool) throws {
        #expect(try Self.evaluate(rule) == .bool(expected), "\(rule)")
    }

    @Test(
        "an absent field, a wrong type, a division by zero and an overflow are errors, not false",
        arguments: [
            ("self.absent > 0", "no such key: absent"),
            ("self.labels['nope'] == 'x'", "no such key: nope"),
            ("self.name > 3", "no such overload"),
            ("self.minReplicas / 0 == 1", "division by zero"),
            ("9223372036854775807 + 1 > 0", "integer overflow"),
            ("self.tags[7] == 'x'", "index out of range"),
            ("self.absent == 1 && true", "no such key: absent"),
        ])
    func errors(rule: String, fragment: String) {
        Self.expectError(rule, fragment)
    }

    /// `rule` must fail to evaluate over ``object``, with `fragment` in its message.
    static func expectError(_ rule: String, _ fragment: String) {
        do {
            let value = try evaluate(rule)
            Issue.record("\(rule) gave \(value), not an error")
        } catch let error as CELEvaluator.EvaluationError {
            #expect(error.description.contains(fragment), "\(rule): \(error)")
        } catch {
            Issue.record("\(rule): \(error)")
        }
    }

    @Test(
        "optMap and optFlatMap over optionals; format's clauses as cel-go writes them",
        arguments: [
            ("self.?labels.optMap(l, l.size()).orValue(0) == 2", true),
            ("self.?absent.optMap(a, a.size()).orValue(-1) == -1", true),
            ("self.?labels.optFlatMap(l, l.?tier).orValue('') == 'web'", true),
            ("self.?labels.optFlatMap(l, l.?nope).hasValue() == false", true),
            ("'%s-%d'.format(['a', 1]) == 'a-1'", true),
            ("'%s is %d%%'.format([self.name, 50]) == 'web-frontend is 50%'", true),
            ("'%.2f|%f|%e'.format([3.14159, 2, 1234.5678]) == '3.14|2.000000|1.234568e+03'", true),
            ("'%b %o %x %X'.format([5, 8, 255, 255]) == '101 10 ff FF'", true),
            ("'%x'.format(['Hi']) == '4869'", true),
            ("'%s %s %s'.format([[1, 'a'], {'k': true}, null]) == '[1, \"a\"] {\"k\": true} null'", true),
            ("'%s'.format([duration('90s')]) == '1m30s' || '%s'.format([duration('90s')]) == '90s'", true),
        ])
    func optionalsAndFormat(rule: String, expected: Bool) throws {
        #expect(try Self.evaluate(rule) == .bool(expected), "\(rule)")
    }

    @Test(
        "format refuses a clause that does not suit its argument, or a missing argument",
        arguments: [
            ("'%d'.format([1.5]) == ''", "decimal clause can only be used on integers"),
            ("'%s %s'.format(['a']) == ''", "index 1 out of range"),
            ("'%q'.format(['a']) == ''", "unrecognized formatting clause"),
            ("self.?labels.optFlatMap(l, l.size()).hasValue()", "must give an optional"),
        ])
    func formatErrors(rule: String, fragment: String) {
        Self.expectError(rule, fragment)
    }

    @Test(
        "two-variable comprehensions: index and element of a list, key and value of a map, and the transforms",
        arguments: [
            ("self.labels.all(k, v, v.size() > 0 && k != v)", true),
            ("self.labels.all(k, v, v == 'web')", false),
            ("self.ports.all(i, p, i == 0 || p.port > self.ports[i - 1].port)", true),  // ports in ascending order
            ("self.ports.exists(i, p, i == 1 && p.name == 'https')", true),
            ("self.labels.exists(k, v, k == 'team' && v == 'b')", false),
            ("self.labels.existsOne(k, v, v.startsWith('w'))", true),
            ("self.tags.existsOne(t, t != 'b')", false),
            ("self.ports.transformList(i, p, p.port) == [80, 443]", true),
            ("self.ports.transformList(i, p, i > 0, p.name + ':' + string(i)) == ['https:1']", true),
            ("self.labels.transformList(k, v, k + '=' + v) == ['team=a', 'tier=web']", true),
            ("self.labels.transformMap(k, v, v.upperAscii()) == {'tier': 'WEB', 'team': 'A'}", true),
            ("self.labels.transformMap(k, v, k != 'team', v.size()) == {'tier': 3}", true),
            ("self.labels.transformMapEntry(k, v, {v: k}) == {'web': 'tier', 'a': 'team'}", true),
            ("self.ports.transformMapEntry(i, p, p.port > 100, {p.name: p.port}) == {'https': 443}", true),
            ("self.empty.all(i, v, false) && !self.empty.exists(i, v, true) && self.empty.transformList(i, v, v) == []", true),
            // An element's error is absorbed where another decides, as in `&&` and `||`.
            ("self.ports.exists(i, p, p.absent == 1 || i == 1)", true),
            // The variables hide `self` inside, and are gone outside.
            ("self.tags.all(self, v, self >= 0) && self.tags.size() == 3", true),
        ])
    func twoVariableComprehensions(rule: String, expected: Bool) throws {
        #expect(try Self.evaluate(rule) == .bool(expected), "\(rule)")
    }

    @Test(
        "two-variable comprehensions refuse what cel-go refuses",
        arguments: [
            ("self.labels.transformMapEntry(k, v, {'same': v}).size() == 1", "insert failed: key same already exists"),
            ("self.labels.transformMapEntry(k, v, v).size() == 1", "must give a map, not string"),
            ("self.ports.transformMap(i, p, p.port).size() == 2", "transformMap over a list makes integer keys"),
            ("self.ports.all(i, p, p.port)", "the predicate of all is not a bool"),
            ("self.name.all(i, c, true)", "no such overload: string.all()"),
        ])
    func twoVariableErrors(rule: String, fragment: String) {
        Self.expectError(rule, fragment)
    }

    @Test(
        "what is outside the subset is refused when parsed, never evaluated wrongly",
        arguments: [
            // Local bindings are in the resource-allocation environment of Kubernetes, not in its validation rules'.
            "cel.bind(r, self.minReplicas, r > 0)",
            "self.labels.all(k, k, true)",
            "self.ports.transformList(i, p) == []",
            "self.labels.transformMapEntry(k, v, true, {v: k}, 1) == {}",
            "self.?labels.optMap(l) == 2",
            "self.minReplicas <=",
            "'unterminated",
        ])
    func outsideTheSubset(rule: String) {
        #expect(throws: CELSyntaxError.self) { try CELExpression(parsing: rule) }
    }

    @Test(
        "durations and timestamps: parsed, compared, added and subtracted, read field by field, written back as CEL writes them",
        arguments: [
            // Gateway API's HTTPRoute rule: the backend's timeout may not exceed the request's.
            (
                "!(has(self.request) && has(self.backendRequest) && duration(self.request) != duration('0s') && duration(self.backendRequest) > duration(self.request))",
                true
            ),
            ("duration(self.backendRequest) < duration(self.request)", true),
            ("duration('1h30m') == duration('90m') && duration('1.5s') == duration('1500ms') && duration('-2m') < duration('0')", true),
            ("duration('1h') + duration('30m') == duration('5400s') && duration('1h') - duration('2h') == -duration('1h')", true),
            ("duration('90m').getHours() == 1 && duration('90m').getMinutes() == 90 && duration('1.5s').getMilliseconds() == 1500", true),
            ("string(duration('1h30m')) == '5400s' && string(duration('1.25s')) == '1.25s'", true),
            ("timestamp('2026-12-03T09:00:00Z') < timestamp('2026-12-03T10:00:00+00:30')", true),
            ("timestamp('2026-12-03T10:00:00+01:00') == timestamp('2026-12-03T09:00:00Z')", true),
            ("timestamp('2026-12-03T09:00:00Z') - timestamp('2026-12-02T09:00:00Z') == duration('24h')", true),
            ("timestamp('2024-02-28T23:00:00Z') + duration('2h') == timestamp('2024-02-29T01:00:00Z')", true),
            ("string(timestamp('2026-12-03T10:00:00.250+01:00')) == '2026-12-03T09:00:00.25Z'", true),
            (
                "timestamp('2026-12-03T09:05:07.5Z').getFullYear() == 2026 && timestamp('2026-12-03T09:05:07.5Z').getMonth() == 11 && timestamp('2026-12-03T09:05:07.5Z').getDate() == 3",
                true
            ),
            (
                "timestamp('2026-12-03T09:05:07.5Z').getDayOfWeek() == 4 && timestamp('2026-12-03T09:05:07.5Z').getDayOfYear() == 336 && timestamp('2026-12-03T09:05:07.5Z').getMilliseconds() == 500",
                true
            ),
            ("timestamp('1969-12-31T23:59:59Z').getDayOfWeek() == 3 && int(timestamp('1970-01-02T00:00:00Z')) == 86400", true),
            // In a time zone: by name (with its daylight saving time) or by a fixed offset.
            (
                "timestamp('2026-12-03T09:05:00Z').getHours('America/New_York') == 4 && timestamp('2026-07-03T09:05:00Z').getHours('America/New_York') == 5",
                true
            ),
            (
                "timestamp('2026-12-31T23:30:00Z').getFullYear('+05:30') == 2027 && timestamp('2026-12-31T23:30:00Z').getDayOfYear('-01:00') == 364 && timestamp('2026-12-03T09:05:00Z').getMinutes('UTC') == 5",
                true
            ),
        ])
    func time(rule: String, expected: Bool) throws {
        #expect(try Self.evaluate(rule, ["request": "10s", "backendRequest": "2s"]) == .bool(expected), "\(rule)")
    }

    @Test(
        "bad durations and timestamps, and arithmetic past their range, are errors",
        arguments: [
            ("duration('1x') > duration('0')", "invalid duration"),
            ("duration('') > duration('0')", "invalid duration"),
            ("duration('3000000h') > duration('0')", "invalid duration"),
            ("timestamp('2026-02-30T00:00:00Z') > timestamp('2026-01-01T00:00:00Z')", "invalid timestamp"),
            ("timestamp('2026-12-03 09:00:00') > timestamp('2026-01-01T00:00:00Z')", "invalid timestamp"),
            ("timestamp('9999-12-31T23:00:00Z') + duration('2h') > timestamp('2026-01-01T00:00:00Z')", "timestamp out of range"),
            ("duration('2000000h') + duration('2000000h') > duration('0')", "duration out of range"),
            ("duration('1h') < '2h'", "no such overload"),
            ("timestamp('2026-12-03T09:00:00Z').getHours('Mars/Olympus') == 1", "invalid time zone"),
            ("timestamp('2026-12-03T09:00:00Z').getHours('+25:00') == 1", "invalid time zone"),
        ])
    func timeErrors(rule: String, fragment: String) {
        Self.expectError(rule, fragment)
    }

    @Test(
        "quantities, exactly: parsed in every notation, compared, added, converted",
        arguments: [
            ("quantity('1Gi').isGreaterThan(quantity('1G')) && quantity('1Gi') == quantity('1073741824')", true),
            ("quantity('500m').isLessThan(quantity('1')) && quantity('0.5') == quantity('500m') && quantity('1e3') == quantity('1k')", true),
            ("quantity('1.5Gi').compareTo(quantity('1536Mi')) == 0 && quantity('2').compareTo(quantity('3')) == -1", true),
            ("quantity('1').add(quantity('500m')) == quantity('1.5') && quantity('2').sub(1) == quantity('1000m')", true),
            ("quantity('4').isInteger() && quantity('4').asInteger() == 4 && !quantity('1.5').isInteger()", true),
            ("quantity('250m').asApproximateFloat() == 0.25 && quantity('-3').sign() == -1 && quantity('0').sign() == 0", true),
            ("isQuantity('16Gi') && !isQuantity('16 Gi') && !isQuantity('1Gb') && !isQuantity('')", true),
            // Exact past what a double holds: 2^60 + 1 differs from 2^60.
            ("quantity('1Ei').add(1) != quantity('1Ei') && quantity('1Ei').add(1).isGreaterThan(quantity('1Ei'))", true),
            ("quantity('1n').isGreaterThan(quantity('0')) && quantity('0.0000000001') == quantity('1n')", true),
        ])
    func quantities(rule: String, expected: Bool) throws {
        #expect(try Self.evaluate(rule) == .bool(expected), "\(rule)")
    }

    @Test(
        "bad quantities are errors", arguments: ["quantity('1Gb').sign() == 1", "quantity('1.5').asInteger() == 1", "quantity('1e99').sign() == 1"])
    func quantityErrors(rule: String) {
        #expect(throws: CELEvaluator.EvaluationError.self) { try Self.evaluate(rule) }
    }

    @Test(
        "optionals: `.?` and `[?]` select without failing, `optional.of`/`none`/`ofNonZeroValue`, `hasValue`, `value`, `orValue`, `or`",
        arguments: [
            "self.?absent.orValue(7) == 7 && self.?minReplicas.orValue(7) == 2",
            "self.?labels.?tier.orValue('') == 'web' && !self.?labels.?missing.hasValue()",
            // Selecting in an optional keeps it optional; none stays none.
            "self.?absent.deeper.orValue(1) == 1 && self.?ports[0].?name.orValue('') == 'http'",
            "self.labels[?'team'].value() == 'a' && !self.tags[?5].hasValue() && self.tags[?0] == optional.of('a')",
            "optional.none().or(optional.of(3)).value() == 3 && optional.of(1).or(optional.of(2)).value() == 1",
            "!optional.ofNonZeroValue('').hasValue() && optional.ofNonZeroValue(5).hasValue() && !optional.none().hasValue()",
        ])
    func optionals(rule: String) throws {
        #expect(try Self.evaluate(rule) == .bool(true), "\(rule)")
    }

    @Test(
        "Kubernetes' IP and CIDR libraries: parsing as kube-apiserver parses, families and kinds of address, canonical forms, containment",
        arguments: [
            "isIP('10.0.0.1') && isIP('2001:db8::1') && !isIP('10.0.0.01') && !isIP('fe80::1%eth0') && !isIP('::ffff:1.2.3.4') && !isIP('10.0.0')",
            "ip('10.0.0.1').family() == 4 && ip('::1').family() == 6 && ip('::1').isLoopback() && ip('127.0.0.5').isLoopback()",
            "ip('0.0.0.0').isUnspecified() && ip('::').isUnspecified() && ip('169.254.1.1').isLinkLocalUnicast() && ip('fe80::1').isLinkLocalUnicast()",
            "ip('224.0.0.1').isLinkLocalMulticast() && ip('ff02::1').isLinkLocalMulticast() && !ip('239.1.1.1').isLinkLocalMulticast()",
            "ip('10.1.2.3').isGlobalUnicast() && !ip('255.255.255.255').isGlobalUnicast() && !ip('224.0.0.1').isGlobalUnicast() && ip('2001:db8::1').isGlobalUnicast()",
            "ip.isCanonical('2001:db8::1') && !ip.isCanonical('2001:DB8::1') && !ip.isCanonical('2001:db8:0:0:0:0:0:1') && string(ip('2001:DB8:0::1')) == '2001:db8::1'",
            "ip('10.0.0.1') == ip('10.0.0.1') && ip('10.0.0.1') != ip('10.0.0.2')",
            "isCIDR('10.0.0.0/8') && !isCIDR('10.0.0.0/33') && !isCIDR('10.0.0.0') && isCIDR('2001:db8::/32') && !isCIDR('10.0.0.0/08')",
            "cidr('10.0.0.0/8').containsIP(ip('10.255.1.1')) && cidr('10.0.0.0/8').containsIP('10.1.1.1') && !cidr('10.0.0.0/8').containsIP('11.0.0.1') && !cidr('10.0.0.0/8').containsIP('::1')",
            "cidr('10.0.0.0/8').containsCIDR('10.1.0.0/16') && !cidr('10.1.0.0/16').containsCIDR('10.0.0.0/8') && cidr('10.0.0.0/8').containsCIDR(cidr('10.0.0.0/8'))",
            "cidr('192.168.1.5/24').ip() == ip('192.168.1.5') && cidr('192.168.1.5/24').masked() == cidr('192.168.1.0/24') && cidr('192.168.1.5/24').prefixLength() == 24",
            "string(cidr('2001:db8::1/64').masked()) == '2001:db8::/64' && cidr('0.0.0.0/0').containsIP('203.0.113.9')",
        ])
    func addresses(rule: String) throws {
        #expect(try Self.evaluate(rule) == .bool(true), "\(rule)")
    }

    @Test(
        "Kubernetes' URL library: an absolute URI or an absolute path, its scheme, host, port, path and query as Go reads them",
        arguments: [
            "isURL('https://example.com/path') && isURL('/absolute/path') && !isURL('example.com') && !isURL('') && !isURL('https://exa mple.com/')",
            "url('https://example.com:80/').getHost() == 'example.com:80' && url('https://example.com:80/').getPort() == '80' && url('https://example.com/').getPort() == ''",
            "url('https://[::1]:80/').getHostname() == '::1' && url('https://[::1]:80/').getHost() == '[::1]:80' && url('https://user@example.com/').getHostname() == 'example.com'",
            "url('HTTPS://example.com/a%20b').getScheme() == 'https' && url('https://example.com/a%20b').getEscapedPath() == '/a%20b'",
            "url('https://example.com/path?k1=a&k2=b&k2=c').getQuery() == {'k1': ['a'], 'k2': ['b', 'c']} && url('https://example.com/?q=a+b%21').getQuery()['q'] == ['a b!']",
            "url('/only/path').getHost() == '' && url('/only/path').getScheme() == '' && !isURL('https://example.com/%zz') && !isURL('https://example.com:8x/')",
        ])
    func urls(rule: String) throws {
        #expect(try Self.evaluate(rule) == .bool(true), "\(rule)")
    }

    @Test(
        "Kubernetes' format library: validate is none for a valid text, else the list of why not; named formats by name",
        arguments: [
            "!format.dns1123Label().validate('web-1').hasValue() && format.dns1123Label().validate('Web_1').hasValue()",
            "format.dns1123Label().validate('Web_1').value()[0].startsWith('a lowercase RFC 1123 label must consist of')",
            "!format.dns1123Subdomain().validate('a.example.com').hasValue() && format.dns1123Subdomain().validate('a..b').hasValue()",
            "!format.dns1035Label().validate('abc-1').hasValue() && format.dns1035Label().validate('1abc').hasValue()",
            "!format.qualifiedName().validate('example.com/MyName').hasValue() && format.qualifiedName().validate('/x').hasValue()",
            "!format.dns1123LabelPrefix().validate('web-').hasValue() && format.dns1123Label().validate('web-').hasValue()",
            "!format.labelValue().validate('').hasValue() && format.labelValue().validate('-x').hasValue()",
            "!format.uri().validate('https://example.com/a').hasValue() && format.uri().validate('example.com').hasValue()",
            "!format.uuid().validate('123e4567-e89b-12d3-a456-426614174000').hasValue() && format.uuid().validate('123e4567').hasValue()",
            "!format.byte().validate('aGVsbG8=').hasValue() && format.byte().validate('not base64!').hasValue()",
            "!format.date().validate('2026-12-03').hasValue() && format.date().validate('2026-13-03').hasValue()",
            "!format.datetime().validate('2026-12-03T09:00:00Z').hasValue() && format.datetime().validate('2026-12-03').hasValue()",
            "format.named('dns1123Label').hasValue() && !format.named('nonsense').hasValue() && !format.named('uuid').value().validate('123e4567-e89b-12d3-a456-426614174000').hasValue()",
        ])
    func formats(rule: String) throws {
        #expect(try Self.evaluate(rule) == .bool(true), "\(rule)")
    }

    @Test(
        "semantic versions, cel-go's string and set extensions, and Kubernetes' list and regex libraries",
        arguments: [
            "isSemver('1.2.3') && isSemver('1.2.3-rc.1+build.5') && !isSemver('v1.2.3') && isSemver('v1.2', true) && !isSemver('1.02.3')",
            "semver('1.2.3').major() == 1 && semver('1.2.3').minor() == 2 && semver('1.2.3').patch() == 3 && semver('v1.2', true).patch() == 0",
            "semver('1.2.3').isGreaterThan(semver('1.2.3-rc.1')) && semver('1.2.3-alpha.2').isLessThan(semver('1.2.3-alpha.10')) && semver('1.2.3+a').compareTo(semver('1.2.3+b')) == 0",
            "semver('1.10.0').isGreaterThan(semver('1.9.9')) && semver('1.0.0-alpha').isLessThan(semver('1.0.0-alpha.1')) && semver('1.0.0-1').isLessThan(semver('1.0.0-a'))",
            "'hello'.charAt(1) == 'e' && 'hello'.charAt(5) == '' && 'hello world'.indexOf('o', 5) == 7 && 'hello'.lastIndexOf('l') == 3 && 'hello'.lastIndexOf('l', 2) == 2",
            "'a-b-c'.replace('-', '+') == 'a+b+c' && 'a-b-c'.replace('-', '+', 1) == 'a+b-c' && 'a,b,c'.split(',', 2) == ['a', 'b,c'] && 'a,b'.split(',', 0) == []",
            "'tacocat'.substring(4) == 'cat' && 'tacocat'.substring(0, 4) == 'taco' && 'añb'.reverse() == 'bña' && strings.quote('ab') == '\"ab\"'",
            "[1, 2, 3, 2].indexOf(2) == 1 && [1, 2, 3, 2].lastIndexOf(2) == 3 && ['a'].indexOf('b') == -1",
            "'abc 123 def 456'.find('[0-9]+') == '123' && 'abc 123 def 456'.findAll('[0-9]+') == ['123', '456'] && 'abc'.find('[0-9]') == '' && 'a1b2c3'.findAll('[0-9]', 2) == ['1', '2']",
            "sets.contains([1, 2, 3], [3, 1]) && !sets.contains([1], [2]) && sets.equivalent([1, 2, 2], [2, 1]) && sets.intersects([1, 2], [2, 5]) && !sets.intersects([1], [])",
        ])
    func extensions(rule: String) throws {
        #expect(try Self.evaluate(rule) == .bool(true), "\(rule)")
    }

    @Test(
        "bad addresses, prefixes and URLs, and an empty optional's value, are errors naming why",
        arguments: [
            ("ip('1.2.3').family() == 4", "parse error"),
            ("ip('::ffff:1.2.3.4').family() == 6", "IPv4-mapped"),
            ("ip('fe80::1%eth0').family() == 6", "zone"),
            ("cidr('1.2.3.4/40').prefixLength() == 40", "parse error"),
            ("url('example.com').getHost() == ''", "invalid URI for request"),
            ("url('https://example.com/%zz').getHost() == ''", "invalid URL escape"),
            ("optional.none().value() == 1", "optional.none() dereference"),
            ("'abc'.substring(2, 1) == ''", "substring out of range"),
            ("'abc'.charAt(4) == ''", "index out of range"),
            ("semver('1.2').major() == 1", "could not parse"),
            ("ip('10.0.0.1').getHost() == ''", "no such overload"),
        ])
    func libraryErrors(rule: String, fragment: String) {
        Self.expectError(rule, fragment)
    }

    @Test("a schema's date-time and duration strings are timestamps and durations to a rule, as kube-apiserver types them")
    func typedBySchema() throws {
        let schema = try StructuralSchema(
            parsing: [
                "type": "object",
                "properties": [
                    "start": ["type": "string", "format": "date-time"], "end": ["type": "string", "format": "date-time"],
                    "timeout": ["type": "string", "format": "duration"], "name": ["type": "string"],
                ],
                "x-kubernetes-validations": [
                    ["rule": "self.end > self.start", "message": "end must be after start"],
                    ["rule": "self.end - self.start <= duration('24h')", "message": "at most a day"],
                    ["rule": "self.timeout < duration('1m')", "message": "timeout under a minute"],
                ],
            ], path: "openAPIV3Schema")
        func problems(_ value: JSONValue) -> [String] {
            var found: [ValidationProblem] = []
            schema.checkRules(value, into: &found)
            return found.map(\.description)
        }
        // "09:00+01:00" is 08:00Z: after 07:30Z though the string sorts before it.
        #expect(problems(["start": "2026-12-03T07:30:00Z", "end": "2026-12-03T09:00:00+01:00", "timeout": "30s", "name": "a"]).isEmpty)
        let late = problems(["start": "2026-12-03T09:30:00Z", "end": "2026-12-05T09:00:00Z", "timeout": "2m", "name": "a"])
        #expect(
            late.count == 2 && late.contains { $0.contains("at most a day") } && late.contains { $0.contains("timeout under a minute") }, "\(late)")
        let backwards = problems(["start": "2026-12-03T09:30:00Z", "end": "2026-12-03T09:00:00+01:00", "timeout": "1s", "name": "a"])
        #expect(backwards.count == 1 && backwards[0].contains("end must be after start"), "\(backwards)")
    }

    @Test("hostile rules are refused when parsed: deep nesting of every kind, and length")
    func hostile() {
        for rule in [
            String(repeating: "!", count: 5_000) + "true", String(repeating: "(", count: 5_000) + "1" + String(repeating: ")", count: 5_000),
            "self" + String(repeating: ".a", count: 2_000), (0..<500).map { "self.x\($0)" }.joined(separator: " || "),
            String(repeating: "[", count: 3_000) + String(repeating: "]", count: 3_000), String(repeating: "x", count: 20_000),
        ] {
            #expect(throws: CELSyntaxError.self, "\(rule.prefix(40))") { try CELExpression(parsing: rule) }
        }
    }

    @Test(
        "transition rules compare an update with the stored value at the same place: members and map entries by name (dots in keys too), never list elements"
    )
    func transitions() throws {
        let schema = try StructuralSchema(
            parsing: [
                "type": "object",
                "properties": [
                    "labels": [
                        "type": "object",
                        "additionalProperties": [
                            "type": "string", "x-kubernetes-validations": [["rule": "self == oldSelf", "message": "a label is immutable"]],
                        ],
                    ],
                    "steps": [
                        "type": "array",
                        "items": ["type": "string", "x-kubernetes-validations": [["rule": "self == oldSelf", "message": "never checked"]]],
                    ],
                    "size": ["type": "integer", "x-kubernetes-validations": [["rule": "self >= oldSelf", "message": "size may only grow"]]],
                ],
            ], path: "schema")
        func problems(_ new: JSONValue, _ old: JSONValue) -> [String] {
            var found: [ValidationProblem] = []
            schema.checkRules(new, old: old, into: &found)
            return found.map { "\($0.field): \($0.message)" }
        }
        let stored: JSONValue = ["labels": ["example.com/team": "a"], "steps": ["x"], "size": 3]
        #expect(problems(stored, stored).isEmpty)
        #expect(
            problems(["labels": ["example.com/team": "b"], "steps": ["y"], "size": 3], stored) == [
                "labels.example.com/team: Invalid value: \"string\": a label is immutable"
            ])
        #expect(problems(["labels": ["example.com/other": "b"], "size": 2], stored) == ["size: Invalid value: \"integer\": size may only grow"])
        // On a create (no old value) transition rules do not run.
        var created: [ValidationProblem] = []
        schema.checkRules(["size": 0], into: &created)
        #expect(created.isEmpty)
    }

    @Test("a rule that loops over a large list stops at the step budget")
    func budget() throws {
        let large = JSONValue.array((0..<2_000).map { .integer(Int64($0)) })
        #expect(throws: CELEvaluator.EvaluationError.self) { try Self.evaluate("self.all(a, self.all(b, a + b >= 0))", large) }
    }
}
