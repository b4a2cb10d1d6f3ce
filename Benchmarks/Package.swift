// swift-tools-version:6.2
import PackageDescription

// The benchmarks, in a package of their own (as swift-nio keeps its): what only they need,
// gRPC above all (`tether-bench protocol` measures our framed protocol against it), stays out
// of the product's dependency graph. Measured by hand (`make bench`, or
// `swift run --package-path Benchmarks -c release tether-bench ...`); `make test` builds them
// and the integration tests run each small (BenchmarkSmokeTests).
let strictSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "tether-benchmarks",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tether-bench", targets: ["tether-bench"])
    ],
    dependencies: [
        .package(name: "tether", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
    ],
    targets: [
        .executableTarget(
            name: "tether-bench",
            dependencies: [
                .product(name: "TetherBenchmarkSupport", package: "tether"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
            ],
            path: "Sources",
            swiftSettings: strictSettings
        )
    ]
)
