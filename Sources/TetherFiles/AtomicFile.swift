import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why a file could not be read or replaced, with the path and what to do.
public struct FileError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var description: String

    public init(path: String, _ description: String) {
        self.path = path
        self.description = description
    }
}

/// The one way Tether replaces a file it owns (certificates, keys, state, revisions, policies).
///
/// The new contents go to a temporary file created exclusively in the same directory (a name
/// nobody can have planted: `O_EXCL`, random, never a followed symlink), are written with the
/// final mode from the start, synced, and renamed over the target, and then the directory is
/// synced so the rename itself survives a crash. A reader sees the old file or the new one,
/// never half of one; a symlink at the target is replaced, never written through.
public enum AtomicFile {
    public static func write(_ bytes: some Collection<UInt8>, to path: String, mode: mode_t) throws(FileError) {
        let directory = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        var descriptor: Int32 = -1
        var temporary = ""
        for _ in 0..<8 {
            temporary = (directory as NSString).appendingPathComponent(".\(name).tmp-\(UInt64.random(in: 0...UInt64.max).hexadecimal)")
            descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
            if descriptor >= 0 || errno != EEXIST { break }
        }
        guard descriptor >= 0 else {
            throw FileError(path: path, "cannot create a temporary file beside \(path): \(Self.lastError)")
        }
        var closed = false
        defer {
            if !closed { close(descriptor) }
        }
        func fail(_ what: String) -> FileError {
            let reason = Self.lastError
            unlink(temporary)
            return FileError(path: path, "cannot \(what) \(path): \(reason)")
        }
        // The mode asked for, whatever the umask made of it.
        guard fchmod(descriptor, mode) == 0 else { throw fail("set the mode of") }
        let contents = Array(bytes)
        var written = 0
        while written < contents.count {
            let result = contents[written...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if result < 0, errno == EINTR { continue }
            guard result > 0 else { throw fail("write") }
            written += result
        }
        guard fsync(descriptor) == 0 else { throw fail("sync") }
        closed = true
        close(descriptor)
        guard rename(temporary, path) == 0 else { throw fail("replace") }
        syncDirectory(directory)
    }

    public static func write(_ text: String, to path: String, mode: mode_t) throws(FileError) {
        try write(Array(text.utf8), to: path, mode: mode)
    }

    /// The file's bytes, refusing a symlink (state a program follows must be where it says) and
    /// anything larger than `maximumBytes`.
    public static func read(_ path: String, maximumBytes: Int = 512 * 1_048_576) throws(FileError) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ELOOP {
                throw FileError(
                    path: path, "\(path) is a symbolic link; Tether reads its state only from regular files (replace the link with the file)")
            }
            throw FileError(path: path, "cannot read \(path): \(lastError)")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw FileError(path: path, "cannot read \(path): \(lastError)") }
        guard (status.st_mode & S_IFMT) == S_IFREG else { throw FileError(path: path, "\(path) is not a regular file") }
        guard Int(status.st_size) <= maximumBytes else {
            throw FileError(path: path, "\(path) is \(status.st_size) bytes; more than the \(maximumBytes) expected of it")
        }
        var contents: [UInt8] = []
        contents.reserveCapacity(Int(status.st_size))
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw FileError(path: path, "cannot read \(path): \(lastError)") }
            if count == 0 { break }
            contents.append(contentsOf: chunk[0..<count])
            guard contents.count <= maximumBytes else { throw FileError(path: path, "\(path) grew past \(maximumBytes) bytes while being read") }
        }
        return contents
    }

    private static func syncDirectory(_ directory: String) {
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        fsync(descriptor)
        close(descriptor)
    }

    private static var lastError: String { String(cString: strerror(errno)) }
}

extension UInt64 {
    fileprivate var hexadecimal: String { String(self, radix: 16) }
}
