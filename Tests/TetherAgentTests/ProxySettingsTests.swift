import Foundation
import NIOCore
import NIOEmbedded
import Synchronization
import Testing
import TetherWire

@testable import TetherAgent

/// Which proxy the agent uses, as curl and Go decide it, and the CONNECT handler's answers.
@Suite("proxy settings and NO_PROXY")
struct ProxySettingsTests {
    @Test("--proxy wins over the environment, HTTPS_PROXY over ALL_PROXY; 'none' ignores both; scheme and port defaults")
    func precedence() throws {
        let environment = ["HTTPS_PROXY": "http://env-proxy:3128", "ALL_PROXY": "http://all:1080"]
        #expect(
            try ProxySettings.resolve(flag: "https://flag:8443", credentialsFile: nil, caFile: nil, noProxy: nil, environment: environment)?
                .displayURL == "https://flag:8443")
        let fromEnvironment = try ProxySettings.resolve(flag: nil, credentialsFile: nil, caFile: nil, noProxy: nil, environment: environment)
        #expect(fromEnvironment?.displayURL == "http://env-proxy:3128" && fromEnvironment?.source == "HTTPS_PROXY")
        #expect(
            try ProxySettings.resolve(flag: nil, credentialsFile: nil, caFile: nil, noProxy: nil, environment: ["all_proxy": "proxy.corp"])?
                .displayURL == "http://proxy.corp:80")
        #expect(try ProxySettings.resolve(flag: "none", credentialsFile: nil, caFile: nil, noProxy: nil, environment: environment) == nil)
        #expect(try ProxySettings.resolve(flag: nil, credentialsFile: nil, caFile: nil, noProxy: nil, environment: [:]) == nil)
    }

    @Test("credentials: from a file or the environment's URL, never from --proxy; never in the display URL")
    func credentials() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("proxy-credentials-\(UUID().uuidString)").path
        try "alice:pa:ss\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let fromFile = try #require(
            try ProxySettings.resolve(flag: "http://p:3128", credentialsFile: file, caFile: nil, noProxy: nil, environment: [:]))
        #expect(fromFile.authorization == "Basic " + Data("alice:pa:ss".utf8).base64EncodedString())
        #expect(!fromFile.displayURL.contains("alice"))
        let fromEnvironment = try #require(
            try ProxySettings.resolve(
                flag: nil, credentialsFile: nil, caFile: nil, noProxy: nil, environment: ["HTTPS_PROXY": "http://bob:s%40cret@p:3128"]))
        #expect(fromEnvironment.authorization == "Basic " + Data("bob:s@cret".utf8).base64EncodedString())
        #expect(fromEnvironment.displayURL == "http://p:3128")
        let onCommandLine = #expect(throws: ProxyError.self) {
            try ProxySettings.resolve(flag: "http://bob:secret@p:3128", credentialsFile: nil, caFile: nil, noProxy: nil, environment: [:])
        }
        #expect(onCommandLine?.message.contains("--proxy-credentials-file") == true)
        #expect(onCommandLine?.message.contains("secret") == false)
        #expect(throws: ProxyError.self) {
            try ProxySettings.resolve(flag: "socks5://p:1080", credentialsFile: nil, caFile: nil, noProxy: nil, environment: [:])
        }
        #expect(throws: ProxyError.self) {
            try ProxySettings.resolve(flag: "http://p:3128", credentialsFile: nil, caFile: "/etc/hostname", noProxy: nil, environment: [:])
        }
        #expect(ProxySettings.redacted("http://bob:secret@p:3128") == "http://***@p:3128")
    }

    @Test("NO_PROXY: names and their subdomains, IPs and CIDR blocks, host:port, '*'; loopback and localhost never proxied")
    func exclusions() throws {
        let proxy = try #require(
            try ProxySettings.resolve(
                flag: "http://p:3128", credentialsFile: nil, caFile: nil, noProxy: nil,
                environment: ["NO_PROXY": ".corp.example, example.org,10.0.0.0/8, 192.0.2.7, [2001:db8::1], hub.internal:7443"]))
        #expect(!proxy.applies(to: "api.corp.example", port: 443))
        #expect(!proxy.applies(to: "corp.example", port: 443))
        #expect(!proxy.applies(to: "www.example.org", port: 443))
        #expect(proxy.applies(to: "notexample.org", port: 443))
        #expect(!proxy.applies(to: "10.42.0.1", port: 7443))
        #expect(proxy.applies(to: "11.0.0.1", port: 7443))
        #expect(!proxy.applies(to: "192.0.2.7", port: 7443))
        #expect(!proxy.applies(to: "2001:db8::1", port: 7443))
        #expect(!proxy.applies(to: "hub.internal", port: 7443))
        #expect(proxy.applies(to: "hub.internal", port: 8443))
        #expect(!proxy.applies(to: "127.0.0.1", port: 7443) && !proxy.applies(to: "localhost", port: 7443) && !proxy.applies(to: "::1", port: 1))
        #expect(proxy.applies(to: "hub.example.com", port: 7443))
        #expect(NoProxyList("*").matches(host: "anything", port: 1))
        #expect(NoProxyList("").isEmpty)
        #expect(NoProxyList("fd00::/8").matches(host: "fd12::3", port: 1))
    }

    /// The CONNECT handler on an embedded channel: what it asks, and what each answer makes of the tunnel.
    static func tunnel(answer: String?, authorization: String? = "Basic eDp5", close: Bool = false) throws -> (
        request: String, result: Result<Void, any Error>?
    ) {
        let channel = EmbeddedChannel()
        let established = channel.eventLoop.makePromise(of: Void.self)
        let outcome = Mutex<Result<Void, any Error>?>(nil)
        established.futureResult.whenComplete { result in outcome.withLock { $0 = result } }
        try channel.pipeline.syncOperations.addHandler(
            HTTPConnectHandler(
                target: HostAndPort(host: "10.0.0.1", port: 7443), proxy: "http://p:3128", authorization: authorization, established: established))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 3128)).wait()
        let written = try channel.readOutbound(as: ByteBuffer.self)
        let request = written.map { String(buffer: $0) } ?? ""
        if let answer { try channel.writeInbound(channel.allocator.buffer(string: answer)) }
        if close { channel.pipeline.fireChannelInactive() }
        _ = try? channel.finish()
        // An embedded channel runs everything at once: the promise is complete, or the tunnel never answered.
        let result = outcome.withLock { $0 }
        if result == nil { established.fail(ProxyError("no answer")) }
        return (request, result)
    }

    static func message(_ result: Result<Void, any Error>?) -> String {
        guard case .failure(let error)? = result else { return "" }
        return (error as? ProxyError)?.message ?? "\(error)"
    }

    @Test("CONNECT: the request, a 200, a 407, a refusal, not HTTP, oversized headers, data before the tunnel, a close before the answer")
    func connectHandler() throws {
        let ok = try Self.tunnel(answer: "HTTP/1.1 200 Connection established\r\n\r\n")
        #expect(ok.request.hasPrefix("CONNECT 10.0.0.1:7443 HTTP/1.1\r\nHost: 10.0.0.1:7443\r\n"))
        #expect(ok.request.contains("Proxy-Authorization: Basic eDp5\r\n") && ok.request.hasSuffix("\r\n\r\n"))
        if case .success? = ok.result {} else { Issue.record("a 200 opens the tunnel: \(String(describing: ok.result))") }

        let split = try Self.tunnel(answer: "HTTP/1.0 200 OK\r\nVia: tinyproxy\r\n\r\n")
        if case .success? = split.result {} else { Issue.record("headers after the status line: \(String(describing: split.result))") }

        let challenge = try Self.tunnel(
            answer: "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\n\r\n", authorization: nil)
        #expect(Self.message(challenge.result).contains("requires authentication (407)"))
        #expect(Self.message(challenge.result).contains("realm"))
        #expect(Self.message(try Self.tunnel(answer: "HTTP/1.1 407 x\r\n\r\n").result).contains("refused the credentials (407)"))
        #expect(Self.message(try Self.tunnel(answer: "HTTP/1.1 403 Forbidden\r\n\r\n").result).contains("refused CONNECT to 10.0.0.1:7443"))
        #expect(Self.message(try Self.tunnel(answer: "SSH-2.0-OpenSSH\r\n\r\n").result).contains("did not answer CONNECT as an HTTP proxy"))
        let huge = "HTTP/1.1 200 OK\r\n" + String(repeating: "X-Filler: aaaaaaaaaaaaaaaa\r\n", count: 2_000)
        #expect(Self.message(try Self.tunnel(answer: huge).result).contains("more than 16384 bytes"))
        #expect(Self.message(try Self.tunnel(answer: "HTTP/1.1 200 OK\r\n\r\nextra").result).contains("before the tunnel"))
        #expect(Self.message(try Self.tunnel(answer: nil, close: true).result).contains("closed the connection before answering"))
    }
}
