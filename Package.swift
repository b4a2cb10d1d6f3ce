// swift-tools-version:6.2
import PackageDescription

// Every Tether target compiles in Swift 6 mode with the same strictness: warnings are errors,
// existential `any` is spelled out, and a file sees only the members of modules it imports.
let strictSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .treatAllWarnings(as: .error),
]

let nioCore = Target.Dependency.product(name: "NIOCore", package: "swift-nio")
let nioPosix = Target.Dependency.product(name: "NIOPosix", package: "swift-nio")
let nioConcurrency = Target.Dependency.product(name: "NIOConcurrencyHelpers", package: "swift-nio")
let nioTLS = Target.Dependency.product(name: "NIOTLS", package: "swift-nio")
let nioEmbedded = Target.Dependency.product(name: "NIOEmbedded", package: "swift-nio")
let nioTestUtils = Target.Dependency.product(name: "NIOTestUtils", package: "swift-nio")
let nioHTTP1 = Target.Dependency.product(name: "NIOHTTP1", package: "swift-nio")
let nioSSL = Target.Dependency.product(name: "NIOSSL", package: "swift-nio-ssl")
let x509 = Target.Dependency.product(name: "X509", package: "swift-certificates")
let crypto = Target.Dependency.product(name: "Crypto", package: "swift-crypto")
let asn1 = Target.Dependency.product(name: "SwiftASN1", package: "swift-asn1")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let metrics = Target.Dependency.product(name: "Metrics", package: "swift-metrics")
let lifecycle = Target.Dependency.product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let unixSignals = Target.Dependency.product(name: "UnixSignals", package: "swift-service-lifecycle")
let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")
let httpClient = Target.Dependency.product(name: "AsyncHTTPClient", package: "async-http-client")
let yams = Target.Dependency.product(name: "Yams", package: "Yams")

/// The built-in resource-kind plugins, one module per family under `Plugins/`.
let pluginFamilies: [Target.Dependency] = ["WorkloadsPlugin", "ConfigPlugin", "NetworkingPlugin", "PolicyPlugin", "FederationPlugin"]

let package = Package(
    name: "tether",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tether-hub", targets: ["tether-hub"]),
        .executable(name: "tether-agent", targets: ["tether-agent"]),
        .executable(name: "tetherctl", targets: ["tetherctl"]),
        .executable(name: "tether-simcluster", targets: ["tether-simcluster"]),
        .executable(name: "tether-fuzz", targets: ["tether-fuzz"]),
        .executable(name: "tether-example-gadgets", targets: ["tether-example-gadgets"]),
        // For the benchmarks' own package (`Benchmarks/`), which starts federations the way the
        // integration tests do; not an API for anyone else.
        .library(
            name: "TetherBenchmarkSupport",
            targets: ["TetherModel", "TetherJSON", "TetherWire", "TetherSecurity", "TetherProcess", "TetherLocal", "TetherTestSupport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-async-algorithms.git", from: "1.1.4"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        // The system zlib (zlib1g-dev); TetherWire wraps it with hard output limits.
        .systemLibrary(
            name: "CTetherZlib",
            path: "Sources/CTetherZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // The system's OpenSSL 3 (libssl-dev), for the agent port's TLS (docs/architecture.md).
        .systemLibrary(
            name: "CTetherOpenSSL",
            path: "Sources/CTetherOpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        // Debian's Lua 5.4 (liblua5.4-dev), for declarative interpreters (docs/plugins.md); the
        // sandbox's C half is in its shim.
        .systemLibrary(
            name: "CTetherLua",
            path: "Sources/CTetherLua",
            pkgConfig: "lua5.4",
            providers: [.apt(["liblua5.4-dev"])]
        ),
        .target(name: "TetherLua", dependencies: ["CTetherLua", "TetherJSON"], swiftSettings: strictSettings),
        // posix_spawn with glibc's closefrom and chdir actions, which Swift's Glibc module leaves
        // undeclared; every child process the hub, the agent, tetherctl and the tests start.
        .systemLibrary(name: "CTetherSpawn", path: "Sources/CTetherSpawn"),
        .target(name: "TetherProcess", dependencies: ["CTetherSpawn"], swiftSettings: strictSettings),
        // The JSON codec reads and writes every object byte by byte: unoptimized, a 1.3 MB object
        // took a second to store, and the debug binaries the tests run spent most of their time
        // there. Optimized in every configuration, as is the model that walks objects (limits,
        // patches, selectors).
        .target(
            name: "TetherJSON",
            swiftSettings: strictSettings + [.unsafeFlags(["-O"], .when(configuration: .debug))]
        ),
        .target(
            name: "TetherModel",
            dependencies: ["TetherJSON", yams],
            swiftSettings: strictSettings + [.unsafeFlags(["-O"], .when(configuration: .debug))]
        ),
        // Replacing and reading the files Tether owns, one way (`AtomicFile`).
        .target(name: "TetherFiles", swiftSettings: strictSettings),
        .target(
            name: "TetherWire",
            dependencies: ["TetherModel", "TetherJSON", "CTetherZlib", nioCore, nioConcurrency, logging, metrics],
            swiftSettings: strictSettings
        ),
        .target(
            name: "TetherSecurity",
            dependencies: ["TetherFiles", "CTetherOpenSSL", x509, crypto, asn1, nioCore, nioTLS, nioSSL],
            swiftSettings: strictSettings
        ),
        .target(
            name: "TetherStore",
            dependencies: ["TetherModel", "TetherJSON", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strictSettings
        ),
        // The PostgreSQL store, for hubs that share a federation (docs/ha.md); only the hub links it.
        .target(
            name: "TetherStorePostgres",
            dependencies: [
                "TetherStore", "TetherModel", "TetherJSON", .product(name: "PostgresNIO", package: "postgres-nio"), nioCore, nioPosix, nioSSL,
                logging,
            ],
            swiftSettings: strictSettings
        ),
        .target(name: "TetherPlugin", dependencies: ["TetherModel", "TetherJSON", "TetherLua", "TetherProcess"], swiftSettings: strictSettings),
        .target(
            name: "WorkloadsPlugin", dependencies: ["TetherPlugin", "TetherModel", "TetherJSON"], path: "Plugins/Workloads",
            swiftSettings: strictSettings),
        .target(
            name: "ConfigPlugin", dependencies: ["TetherPlugin", "TetherModel", "TetherJSON"], path: "Plugins/Config", swiftSettings: strictSettings),
        .target(
            name: "NetworkingPlugin", dependencies: ["TetherPlugin", "TetherModel", "TetherJSON"], path: "Plugins/Networking",
            swiftSettings: strictSettings),
        .target(
            name: "PolicyPlugin", dependencies: ["TetherPlugin", "TetherModel", "TetherJSON"], path: "Plugins/Policy",
            swiftSettings: strictSettings),
        .target(
            name: "FederationPlugin", dependencies: ["TetherPlugin", "TetherModel", "TetherJSON"], path: "Plugins/Federation",
            swiftSettings: strictSettings),
        // The registries the executables serve: every family above, plus the member-only Node kind.
        .target(
            name: "BuiltinPlugins",
            dependencies: ["TetherPlugin", "TetherModel", "TetherJSON"] + pluginFamilies,
            path: "Plugins/Builtin",
            swiftSettings: strictSettings
        ),
        .target(
            name: "TetherAPI",
            dependencies: [
                "TetherModel", "TetherJSON", "TetherStore", "TetherPlugin", "TetherSecurity", "TetherWire", nioCore, nioConcurrency, nioSSL, nioHTTP1,
                x509, httpClient,
                logging, lifecycle, metrics,
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "TetherSim",
            dependencies: ["TetherModel", "TetherJSON", "TetherStore", "TetherPlugin", logging, metrics, lifecycle],
            swiftSettings: strictSettings
        ),
        .target(
            name: "TetherObservability",
            dependencies: [
                logging, metrics, argumentParser, lifecycle, nioCore, nioPosix, nioHTTP1,
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "TetherHub",
            dependencies: [
                "TetherModel", "TetherJSON", "TetherFiles", "TetherWire", "TetherSecurity", "TetherStore", "TetherPlugin", nioCore, nioPosix, nioSSL,
                nioTLS, nioConcurrency, x509, logging, metrics, lifecycle, unixSignals, httpClient,
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "TetherAgent",
            dependencies: [
                "TetherModel", "TetherJSON", "TetherWire", "TetherSecurity", "TetherPlugin", "TetherFiles", nioCore, nioPosix, nioSSL, nioTLS,
                nioConcurrency, nioHTTP1, x509, logging, metrics, lifecycle, httpClient,
            ],
            swiftSettings: strictSettings
        ),
        // Runs a federation's processes on this machine: `tetherctl demo` and the integration tests.
        .target(name: "TetherLocal", dependencies: ["TetherSecurity", "TetherProcess"], swiftSettings: strictSettings),
        .executableTarget(
            name: "tether-hub",
            dependencies: [
                "TetherHub", "TetherAPI", "TetherStore", "TetherStorePostgres", "TetherPlugin", "BuiltinPlugins", "TetherSecurity",
                "TetherWire", "TetherObservability", argumentParser, logging, lifecycle, unixSignals, nioCore,
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "tether-agent",
            dependencies: [
                "TetherAgent", "TetherPlugin", "BuiltinPlugins", "TetherSecurity", "TetherWire", "TetherObservability",
                argumentParser, logging, lifecycle, unixSignals, nioCore,
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "tether-simcluster",
            dependencies: [
                "TetherSim", "TetherAPI", "TetherStore", "TetherPlugin", "BuiltinPlugins", "TetherSecurity", "TetherWire",
                "TetherObservability", argumentParser, logging, lifecycle, unixSignals,
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "tetherctl",
            dependencies: [
                "TetherSecurity", "TetherLocal", "TetherModel", "TetherJSON", "TetherObservability", "TetherPlugin", "TetherLua", "BuiltinPlugins",
                argumentParser,
                x509,
                unixSignals, httpClient, nioCore, nioSSL,
                nioHTTP1,
            ],
            swiftSettings: strictSettings
        ),

        // The compiled example of an out-of-process plugin (Plugins/External/swift-gadgets): Foundation only.
        .executableTarget(
            name: "tether-example-gadgets", path: "Plugins/External/swift-gadgets", exclude: ["plugin.json", "gadgets"],
            swiftSettings: strictSettings),

        // libFuzzer harnesses for everything that reads what strangers send (`make fuzz`); built
        // plainly it replays inputs, which is how the test command checks the committed corpus.
        .executableTarget(
            name: "tether-fuzz",
            dependencies: [
                "TetherModel", "TetherJSON", "TetherWire", "TetherAPI", "TetherSecurity", "TetherPlugin", "BuiltinPlugins", nioCore, nioEmbedded,
                nioTLS,
            ],
            path: "Tests/Fuzz",
            exclude: ["Corpus", "run-fuzzers.sh", "lsan-suppressions.txt"],
            swiftSettings: strictSettings
        ),

        // Test support: in-code PKI, process launchers with readiness waits, deadlines, a wire client.
        .target(
            name: "TetherTestSupport",
            dependencies: [
                "TetherModel", "TetherJSON", "TetherWire", "TetherSecurity", "TetherProcess", "TetherLocal", nioCore, nioPosix, nioSSL, nioTLS,
                nioHTTP1, x509,
                crypto, httpClient,
            ],
            path: "Tests/TetherTestSupport",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "TetherWireTests",
            dependencies: ["TetherWire", "TetherModel", "TetherJSON", nioCore, nioEmbedded, nioTestUtils],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "TetherSimTests", dependencies: ["TetherSim", "TetherModel", "TetherJSON", "TetherStore", "TetherTestSupport", logging],
            swiftSettings: strictSettings),
        .testTarget(name: "TetherModelTests", dependencies: ["TetherModel", "TetherJSON"], swiftSettings: strictSettings),
        .testTarget(
            name: "TetherPluginTests",
            dependencies: ["TetherPlugin", "TetherLua", "TetherModel", "TetherJSON", "BuiltinPlugins"] + pluginFamilies,
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "TetherStoreTests",
            dependencies: ["TetherStore", "TetherStorePostgres", "TetherModel", "TetherJSON", "TetherTestSupport", "TetherLocal"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "TetherSecurityTests",
            dependencies: ["TetherSecurity", "TetherTestSupport", "TetherLocal", x509, crypto, nioSSL, nioCore, nioPosix, nioTLS, nioConcurrency],
            swiftSettings: strictSettings
        ),
        // The pure cores, in milliseconds: the engine's decisions and the applier's.
        .testTarget(
            name: "TetherHubTests",
            dependencies: ["TetherHub", "TetherWire", "TetherStore", "TetherModel", "TetherJSON", "BuiltinPlugins"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "TetherAgentTests",
            dependencies: ["TetherAgent", "TetherWire", "TetherModel", "TetherJSON", "BuiltinPlugins", nioCore, nioEmbedded],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "TetherAPITests",
            dependencies: [
                "TetherAPI", "TetherStore", "TetherModel", "TetherJSON", "TetherSecurity", "BuiltinPlugins", "TetherPlugin", "WorkloadsPlugin",
                nioCore, logging,
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "TetherSessionTests",
            dependencies: [
                "TetherHub", "TetherAgent", "TetherWire", "TetherSecurity", "TetherStore", "TetherModel", "TetherJSON", "BuiltinPlugins",
                "TetherTestSupport", nioCore, nioEmbedded, logging,
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "TetherIntegrationTests",
            dependencies: [
                "TetherTestSupport", "TetherLocal", "TetherProcess", "TetherWire", "TetherSecurity", "TetherModel", "TetherJSON",
                "TetherAgent", "TetherPlugin", "BuiltinPlugins", nioCore, x509, crypto, logging,
            ],
            exclude: ["Scripts"],
            swiftSettings: strictSettings
        ),
    ]
)
