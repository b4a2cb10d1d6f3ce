import NIOCore

/// Calls back when nothing has been read for a timeout: how sessions notice a silent peer.
///
/// Costs one scheduled check per timeout period however many messages arrive: a read only
/// records its time, and a check that finds a recent read reschedules itself for the remainder.
/// Bound to one event loop; use it from that loop only, and `cancel` it when the channel closes.
public final class ReadDeadline {
    private let loop: any EventLoop
    private var timeout = TimeAmount.zero
    private var lastRead = NIODeadline.uptimeNanoseconds(0)
    private var check: Scheduled<Void>?
    private var expired: (() -> Void)?

    public init(loop: any EventLoop) {
        self.loop = loop
    }

    /// (Re)starts the deadline `timeout` from now; `expired` runs once, on the loop, if it passes.
    public func arm(_ timeout: TimeAmount, expired: @escaping () -> Void) {
        check?.cancel()
        self.timeout = timeout
        self.lastRead = loop.now
        self.expired = expired
        schedule(at: lastRead + timeout)
    }

    public func noteRead() {
        lastRead = loop.now
    }

    /// The timeout it was armed with, while it is armed.
    public var timeoutIfArmed: TimeAmount? {
        expired == nil ? nil : timeout
    }

    public func cancel() {
        check?.cancel()
        check = nil
        expired = nil
    }

    private func schedule(at deadline: NIODeadline) {
        check = loop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in self?.fire() }
    }

    private func fire() {
        guard let expired else { return }
        let due = lastRead + timeout
        if due <= loop.now {
            cancel()
            expired()
        } else {
            schedule(at: due)
        }
    }
}
