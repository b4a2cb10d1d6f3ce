import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// A local, plain-HTTP `GET /metrics` for a process that serves no other HTTP (the agent):
/// meant for a loopback or pod-local address that a Prometheus scraper reaches. It also answers
/// the probes a Deployment uses: `/healthz` (the process answers) and `/readyz` (ready, or 503
/// with the reason `readiness` gives).
public final class MetricsEndpoint: Service, Sendable {
    private let host: String
    private let port: Int
    private let exposition: @Sendable () -> [UInt8]
    private let readiness: @Sendable () -> String?
    private let logger: Logger

    /// - Parameter readiness: nil when ready, else why not.
    public init(
        host: String, port: Int, exposition: @escaping @Sendable () -> [UInt8], readiness: @escaping @Sendable () -> String? = { nil },
        logger: Logger
    ) {
        self.host = host
        self.port = port
        self.exposition = exposition
        self.readiness = readiness
        self.logger = logger
    }

    public func run() async throws {
        let exposition = exposition
        let readiness = readiness
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(MetricsHandler(exposition: exposition, readiness: readiness))
                }
            }
            .bind(host: host, port: port)
            .get()
        logger.info(
            "metrics endpoint ready",
            metadata: ["tether.event": "metrics.ready", "tether.port": "\(channel.localAddress?.port ?? 0)"]
        )
        await withGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
    }
}

/// Answers `GET /metrics` with the exposition, the probes, and anything else with 404.
private final class MetricsHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let exposition: @Sendable () -> [UInt8]
    private let readiness: @Sendable () -> String?
    private var path: String?

    init(exposition: @escaping @Sendable () -> [UInt8], readiness: @escaping @Sendable () -> String?) {
        self.exposition = exposition
        self.readiness = readiness
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            path = head.method == .GET ? head.uri.split(separator: "?").first.map(String.init) : nil
        case .body:
            break
        case .end:
            let (status, contentType, body): (HTTPResponseStatus, String, [UInt8])
            switch path {
            case "/metrics": (status, contentType, body) = (.ok, "text/plain; version=0.0.4; charset=utf-8", exposition())
            case "/healthz", "/livez": (status, contentType, body) = (.ok, "text/plain", Array("ok\n".utf8))
            case "/readyz":
                let reason = readiness()
                (status, contentType, body) = (reason == nil ? .ok : .serviceUnavailable, "text/plain", Array("\(reason ?? "ok")\n".utf8))
            default:
                (status, contentType, body) = (.notFound, "text/plain", Array("only GET /metrics, /healthz and /readyz are served here\n".utf8))
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: contentType)
            headers.add(name: "Content-Length", value: "\(body.count)")
            context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
            path = nil
        }
    }
}
