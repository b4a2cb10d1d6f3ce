// A Tether out-of-process plugin for example.com/v1 Gadget, compiled: Foundation only, no Tether
// modules, so it shows the protocol as any language sees it. Frames on stdin and stdout: a 4-byte
// big-endian length, then that many bytes of JSON.
import Foundation

func readExactly(_ count: Int) -> Data? {
    var data = Data()
    while data.count < count {
        let chunk = FileHandle.standardInput.readData(ofLength: count - data.count)
        if chunk.isEmpty { return nil }
        data.append(chunk)
    }
    return data
}

func write(_ value: [String: Any]) {
    guard let body = try? JSONSerialization.data(withJSONObject: value) else { return }
    var length = UInt32(body.count).bigEndian
    FileHandle.standardOutput.write(Data(bytes: &length, count: 4) + body)
}

/// A Gadget is Healthy once its status says `online`; its member copy never carries `spec.serial`
/// (each member assigns its own).
func answer(_ request: [String: Any]) -> Any {
    let object = request["object"] as? [String: Any] ?? [:]
    let status = object["status"] as? [String: Any] ?? [:]
    switch request["operation"] as? String {
    case "handshake":
        return [
            "name": "swift-gadgets", "pluginVersion": "1.0.0", "version": 1,
            "kinds": [["apiVersion": "example.com/v1", "kind": "Gadget"]], "operations": ["health", "summary", "prepare"],
        ]
    case "health":
        return status["online"] as? Bool == true ? ["state": "Healthy"] : ["state": "Progressing", "reason": "not online yet"]
    case "summary":
        return ["online": status["online"] as? Bool ?? false]
    case "prepare":
        var copy = object
        copy["status"] = nil
        if var spec = copy["spec"] as? [String: Any] {
            spec["serial"] = nil
            copy["spec"] = spec
        }
        return copy
    default:
        return NSNull()
    }
}

while let header = readExactly(4) {
    let length = header.reduce(0) { $0 << 8 | Int($1) }
    guard let body = readExactly(length), let request = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else { break }
    write(["id": request["id"] ?? -1, "result": answer(request)])
}
