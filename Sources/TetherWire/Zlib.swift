import CTetherZlib
import NIOCore

/// zlib (RFC 1950) compression of frame payloads, on the system zlib.
///
/// Inflation writes into output that grows in steps and stops as soon as it would pass the
/// caller's limit, so a compression bomb costs at most `limit` bytes, never what it claims.
enum Zlib {
    /// Why a payload could not be inflated.
    enum InflateFailure: Error, Equatable {
        /// The output would exceed the limit.
        case tooLarge
        /// The input ends before the zlib stream does.
        case truncated
        /// The input is not a zlib stream, fails its checksum, or has bytes after its end.
        case corrupt(String)
    }

    static func deflate(_ input: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        var stream = z_stream()
        guard tether_deflateInit(&stream, Z_DEFAULT_COMPRESSION) == Z_OK else {
            // Only a failed allocation makes deflateInit fail; sending uncompressed is always valid.
            return input
        }
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, uLong(input.readableBytes)))
        var output = allocator.buffer(capacity: bound)
        let status = input.withUnsafeReadableBytes { inputBytes in
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { outputBytes in
                stream.next_in = UnsafeMutablePointer(
                    mutating: inputBytes.bindMemory(to: Bytef.self).baseAddress
                )
                stream.avail_in = uInt(inputBytes.count)
                stream.next_out = outputBytes.bindMemory(to: Bytef.self).baseAddress
                stream.avail_out = uInt(outputBytes.count)
                let status = CTetherZlib.deflate(&stream, Z_FINISH)
                return status == Z_STREAM_END ? outputBytes.count - Int(stream.avail_out) : 0
            }
        }
        return status > 0 ? output : input
    }

    static func inflate(
        _ input: ByteBuffer,
        limit: Int,
        allocator: ByteBufferAllocator
    ) throws(InflateFailure) -> ByteBuffer {
        var stream = z_stream()
        guard tether_inflateInit(&stream) == Z_OK else { throw .corrupt("zlib could not start a stream") }
        defer { inflateEnd(&stream) }

        // Start near the likely size and double, never past `limit`; at the limit, a one-byte probe
        // tells a stream that ends exactly there from one that has more to give.
        var output = allocator.buffer(capacity: min(limit, max(4096, input.readableBytes * 4)))
        let result: Result<Void, InflateFailure> = input.withUnsafeReadableBytes { inputBytes in
            stream.next_in = UnsafeMutablePointer(mutating: inputBytes.bindMemory(to: Bytef.self).baseAddress)
            stream.avail_in = uInt(inputBytes.count)
            while true {
                if output.writableBytes == 0 && output.writerIndex < limit {
                    output.reserveCapacity(min(limit, max(output.capacity * 2, 4096)))
                }
                let room = min(output.writableBytes, limit - output.writerIndex)
                var status: Int32 = Z_OK
                if room > 0 {
                    output.writeWithUnsafeMutableBytes(minimumWritableBytes: 0) { outputBytes in
                        stream.next_out = outputBytes.bindMemory(to: Bytef.self).baseAddress
                        stream.avail_out = uInt(room)
                        status = CTetherZlib.inflate(&stream, Z_NO_FLUSH)
                        return room - Int(stream.avail_out)
                    }
                } else {
                    var probe: UInt8 = 0
                    status = withUnsafeMutablePointer(to: &probe) { probePointer in
                        stream.next_out = probePointer
                        stream.avail_out = 1
                        return CTetherZlib.inflate(&stream, Z_NO_FLUSH)
                    }
                    if stream.avail_out == 0 { return .failure(.tooLarge) }
                }
                switch status {
                case Z_STREAM_END:
                    return stream.avail_in == 0
                        ? .success(()) : .failure(.corrupt("bytes follow the end of the zlib stream"))
                case Z_OK:
                    continue
                case Z_BUF_ERROR:
                    // There is always room to write (or the probe byte), so no progress means the
                    // input ended before the stream did.
                    return .failure(.truncated)
                case Z_NEED_DICT:
                    return .failure(.corrupt("the zlib stream asks for a preset dictionary"))
                default:
                    let message = stream.msg.map { String(cString: $0) } ?? "zlib status \(status)"
                    return .failure(.corrupt(message))
                }
            }
        }
        try result.get()
        return output
    }
}
