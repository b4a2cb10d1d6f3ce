import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Reports files changed in a few directories: written and closed, renamed into place, or
/// removed (Linux inotify), so certificate files are reloaded when a rotation script replaces
/// them.
///
/// Directories are watched rather than files, because an atomic replace (write a temporary
/// file, rename it over the old one) gives the path a new inode. One thread per watcher blocks
/// in `poll(2)` on the inotify descriptor and a stop pipe; nothing wakes on a timer.
public final class FileWatcher: Sendable {
    /// Each element is the set of paths one read of the kernel's queue reported.
    public let changes: AsyncStream<Set<String>>
    private let continuation: AsyncStream<Set<String>>.Continuation
    private let stopWrite: Int32
    private let stopped = Mutex(false)

    public init(directories: [String]) throws(SecurityError) {
        let descriptor = inotify_init1(Int32(IN_CLOEXEC))
        guard descriptor >= 0 else {
            throw SecurityError(.unreadableFile, "cannot watch files (inotify_init1): \(String(cString: strerror(errno)))")
        }
        var watched: [Int32: String] = [:]
        for directory in Set(directories) {
            let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE)
            let watch = inotify_add_watch(descriptor, directory, mask)
            guard watch >= 0 else {
                let reason = String(cString: strerror(errno))
                close(descriptor)
                throw SecurityError(.unreadableFile, "cannot watch \(directory) for certificate changes: \(reason)")
            }
            watched[watch] = directory
        }
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else {
            close(descriptor)
            throw SecurityError(.unreadableFile, "cannot create the file watcher's stop pipe: \(String(cString: strerror(errno)))")
        }
        _ = fcntl(pipeEnds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(pipeEnds[1], F_SETFD, FD_CLOEXEC)
        stopWrite = pipeEnds[1]
        (changes, continuation) = AsyncStream.makeStream(of: Set<String>.self, bufferingPolicy: .bufferingNewest(64))
        let (stopRead, continuation, directoriesByWatch) = (pipeEnds[0], self.continuation, watched)
        let thread = Thread {
            Self.readEvents(inotify: descriptor, stop: stopRead, directories: directoriesByWatch, into: continuation)
        }
        thread.name = "tether-file-watcher"
        thread.start()
    }

    /// Ends the watch: the thread leaves `poll`, closes its descriptors and finishes `changes`.
    public func stop() {
        // Once only: after the thread has gone, its end of the pipe is closed and a write would raise SIGPIPE.
        guard
            stopped.withLock({ stopped in
                defer { stopped = true }
                return !stopped
            })
        else { return }
        var byte: UInt8 = 1
        _ = write(stopWrite, &byte, 1)
    }

    deinit {
        stop()
        close(stopWrite)
    }

    private static func readEvents(
        inotify: Int32,
        stop: Int32,
        directories: [Int32: String],
        into continuation: AsyncStream<Set<String>>.Continuation
    ) {
        defer {
            close(inotify)
            close(stop)
            continuation.finish()
        }
        var descriptors = [pollfd(fd: inotify, events: Int16(POLLIN), revents: 0), pollfd(fd: stop, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        let header = MemoryLayout<inotify_event>.size
        while true {
            let ready = poll(&descriptors, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                return
            }
            if descriptors[1].revents != 0 { return }
            guard descriptors[0].revents & Int16(POLLIN) != 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { read(inotify, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return
            }
            var paths = Set<String>()
            var offset = 0
            while offset + header <= count {
                let (watch, length) = buffer.withUnsafeBytes { raw -> (Int32, Int) in
                    let event = raw.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                    return (event.wd, Int(event.len))
                }
                let nameStart = offset + header
                let nameBytes = buffer[nameStart..<min(nameStart + length, count)].prefix { $0 != 0 }
                if let directory = directories[watch], !nameBytes.isEmpty {
                    paths.insert((directory as NSString).appendingPathComponent(String(decoding: nameBytes, as: UTF8.self)))
                }
                offset = nameStart + length
            }
            if !paths.isEmpty { continuation.yield(paths) }
        }
    }
}
