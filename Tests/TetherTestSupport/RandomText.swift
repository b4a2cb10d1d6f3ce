/// Text that compression cannot shrink, for tests about size: `count` random lower-case letters
/// and digits. Made eight characters per random number and written in place, since a debug
/// build pays per element (mapping a range to Characters took about a second per megabyte).
public enum RandomText {
    public static func alphanumeric(count: Int) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBufferPointer { buffer in
            var position = 0
            while position < buffer.count {
                // 36^8 is below 2^64, so eight base-36 digits come from one number.
                var random = generator.next()
                for _ in 0..<8 where position < buffer.count {
                    buffer[position] = alphabet[Int(random % 36)]
                    random /= 36
                    position += 1
                }
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
