import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import TetherJSON
import TetherModel
import TetherSecurity
import TetherWire
import X509

// MARK: - gRPC

/// The same JSON both ways; gRPC frames and (when asked) compresses it.
struct JSONMessageCoder<Message: Codable & Sendable>: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: Message) throws -> Bytes {
        contiguousBytes(try WireCodec.jsonBody(message))
    }

    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> Message {
        try serializedMessageBytes.withUnsafeBytes { try JSONValueDecoder().decode(Message.self, from: $0) }
    }
}

/// Bytes as they are: for JSON encoded beforehand.
struct RawBytesCoder: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes {
        contiguousBytes(message)
    }

    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}

/// One copy into gRPC's buffer type (its sequence initializer goes byte by byte).
private func contiguousBytes<Bytes: GRPCContiguousBytes>(_ source: some ContiguousBytes) -> Bytes {
    source.withUnsafeBytes { source in
        var bytes = Bytes(repeating: 0, count: source.count)
        bytes.withUnsafeMutableBytes { $0.copyMemory(from: source) }
        return bytes
    }
}

/// `tether.bench.DesiredState/Stream` (decoded deltas) and `/StreamBytes` (deltas read for
/// their revision only, as Tether's receiver does with `bytes` carriage): one ack per delta.
struct DesiredStateService: RegistrableRPCService {
    static let stream = MethodDescriptor(fullyQualifiedService: "tether.bench.DesiredState", method: "Stream")
    static let streamBytes = MethodDescriptor(fullyQualifiedService: "tether.bench.DesiredState", method: "StreamBytes")

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: Self.stream, deserializer: JSONMessageCoder<Delta>(), serializer: JSONMessageCoder<Ack>()
        ) { request, _ in
            StreamingServerResponse { writer in
                for try await delta in request.messages {
                    try await writer.write(Ack(revision: delta.toRevision))
                }
                return [:]
            }
        }
        router.registerHandler(
            forMethod: Self.streamBytes, deserializer: RawBytesCoder(), serializer: JSONMessageCoder<Ack>()
        ) { request, _ in
            StreamingServerResponse { writer in
                let codec = WireCodec()
                let allocator = ByteBufferAllocator()
                for try await bytes in request.messages {
                    // The same revision lookup Tether's receiver makes (gRPC has inflated the message already).
                    let frame = Frame(type: WireMessage.Kind.delta.rawValue, payload: allocator.buffer(bytes: bytes))
                    guard let revision = try codec.revision(of: frame, allocator: allocator) else { continue }
                    try await writer.write(Ack(revision: revision))
                }
                return [:]
            }
        }
    }
}

enum GRPCExchange {
    static func run(_ setup: ExchangeSetup, pki: BenchPKI) async throws -> ExchangeResult {
        let traffic = WireTraffic()
        return try await withExchangeLoops { serverGroup, clientGroup in
            try await exchange(setup, pki: pki, traffic: traffic, serverGroup: serverGroup, clientGroup: clientGroup)
        }
    }

    private static func exchange(
        _ setup: ExchangeSetup, pki: BenchPKI, traffic: WireTraffic,
        serverGroup: MultiThreadedEventLoopGroup, clientGroup: MultiThreadedEventLoopGroup
    ) async throws -> ExchangeResult {
        let algorithm: CompressionAlgorithm = setup.compressed ? .deflate : .none
        let algorithms: CompressionAlgorithmSet = setup.compressed ? [.deflate] : []
        let preEncoded = setup.carriage == .bytes ? try setup.preEncoded() : []

        var serverConfig = HTTP2ServerTransport.Posix.Config.defaults
        serverConfig.compression.enabledAlgorithms = algorithms
        serverConfig.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(WireCountingHandler(traffic), position: .first)
            }
        }
        let roots = pki.authorityPEM
        let serverSecurity = HTTP2ServerTransport.Posix.TransportSecurity.mTLS(
            certificateChain: [.bytes(pki.serverPEM.chain, format: .pem)], privateKey: .bytes(pki.serverPEM.key, format: .pem)
        ) { tls in
            tls.trustRoots = .certificates([.bytes(roots, format: .pem)])
            tls.clientCertificateVerification = .noHostnameVerification
        }
        let serverTransport = HTTP2ServerTransport.Posix(
            address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: serverSecurity, config: serverConfig, eventLoopGroup: serverGroup
        )
        let server = GRPCServer(transport: serverTransport, services: [DesiredStateService()])

        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            defer { server.beginGracefulShutdown() }
            guard let port = try await serverTransport.listeningAddress.ipv4?.port else {
                throw ValidationError("the gRPC listener has no IPv4 port")
            }
            var clientConfig = HTTP2ClientTransport.Posix.Config.defaults
            clientConfig.compression = .init(algorithm: algorithm, enabledAlgorithms: algorithms)
            let clientSecurity = HTTP2ClientTransport.Posix.TransportSecurity.mTLS(
                certificateChain: [.bytes(pki.clientPEM.chain, format: .pem)], privateKey: .bytes(pki.clientPEM.key, format: .pem)
            ) { tls in
                tls.trustRoots = .certificates([.bytes(roots, format: .pem)])
                tls.serverCertificateVerification = .fullVerification
            }
            let clientTransport = try HTTP2ClientTransport.Posix(
                target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: clientSecurity, config: clientConfig,
                eventLoopGroup: clientGroup
            )
            let payload = setup.payload
            let result = try await withGRPCClient(transport: clientTransport) { client in
                var options = CallOptions.defaults
                options.compression = algorithm
                let revisions = RevisionCounter()
                func run(_ count: Int) async throws {
                    if preEncoded.isEmpty {
                        try await stream(
                            client, DesiredStateService.stream, JSONMessageCoder<Delta>(), count: count, window: setup.window, options: options
                        ) {
                            payload.delta(revision: revisions.next())
                        }
                    } else {
                        try await stream(
                            client, DesiredStateService.streamBytes, RawBytesCoder(), count: count, window: setup.window, options: options
                        ) {
                            preEncoded[Int(revisions.next()) % preEncoded.count]
                        }
                    }
                }
                if setup.warmup > 0 { try await run(setup.warmup) }
                return try await ExchangeResult.measure(count: setup.count, traffic: traffic) { try await run(setup.count) }
            }
            server.beginGracefulShutdown()
            try await group.waitForAll()
            return result
        }
    }

    /// One bidirectional stream carrying `count` deltas, at most `window` unacked.
    private static func stream<Message: Sendable>(
        _ client: GRPCClient<HTTP2ClientTransport.Posix>, _ method: MethodDescriptor, _ serializer: some MessageSerializer<Message>,
        count: Int, window: Int, options: CallOptions, next: @escaping @Sendable () -> Message
    ) async throws {
        let (acks, acked) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .unbounded)
        let request = StreamingClientRequest(of: Message.self) { writer in
            var sent = 0
            var credits = acks.makeAsyncIterator()
            while sent < count {
                if sent >= window, await credits.next() == nil { break }
                try await writer.write(next())
                sent += 1
            }
        }
        let received = try await client.bidirectionalStreaming(
            request: request, descriptor: method, serializer: serializer, deserializer: JSONMessageCoder<Ack>(), options: options
        ) { response in
            var received = 0
            for try await _ in response.messages {
                received += 1
                acked.yield()
            }
            return received
        }
        acked.finish()
        guard received == count else { throw ValidationError("gRPC stream ended after \(received) of \(count) acks") }
    }
}

final class RevisionCounter: Sendable {
    private let value = Atomic<UInt64>(0)
    func next() -> UInt64 { value.add(1, ordering: .relaxed).newValue }
}
