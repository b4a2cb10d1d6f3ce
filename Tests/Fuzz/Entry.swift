import Foundation

// Built for fuzzing (`make fuzz`: -sanitize=fuzzer,address and -DTETHER_FUZZ), libFuzzer owns
// `main` and calls this with each input; TETHER_FUZZ_TARGET names the harness. Built plainly,
// `tether-fuzz TARGET FILE...` runs files through a harness once: how a crash is replayed and
// how the committed corpus is checked without the sanitizers.
#if TETHER_FUZZ
    private let selected: FuzzTarget = {
        let name = ProcessInfo.processInfo.environment["TETHER_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            fatalError("set TETHER_FUZZ_TARGET to one of \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return target
    }()

    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
        selected.run(UnsafeRawBufferPointer(start: data, count: size))
        return 0
    }
#else
    @main
    struct ReplayInputs {
        static func main() throws {
            let arguments = CommandLine.arguments.dropFirst()
            guard let name = arguments.first, let target = FuzzTarget(rawValue: name) else {
                print("usage: tether-fuzz TARGET FILE|DIRECTORY...  (targets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")))")
                exit(2)
            }
            var count = 0
            for path in arguments.dropFirst() {
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
                let files =
                    isDirectory.boolValue
                    ? try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { (path as NSString).appendingPathComponent($0) }
                    : [path]
                for file in files {
                    let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
                    bytes.withUnsafeBytes { target.run($0) }
                    count += 1
                }
            }
            print("\(target.rawValue): \(count) inputs ran without a failure")
        }
    }
#endif
