// swift-tools-version:6.1
import PackageDescription

// One list of settings for every target: Swift 6 language mode (strict concurrency).
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let nio: [Target.Dependency] = [
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOPosix", package: "swift-nio"),
]

/// A service library: the domain, the contracts and the service kit, plus what it names.
func serviceLibrary(_ name: String, _ extra: [Target.Dependency] = [], resources: [Resource]? = nil) -> Target {
    .target(
        name: name,
        dependencies: [
            "RedressDomain", "RedressContracts", "RedressStore", "RedressKafka", "RedressServiceKit",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ] + extra,
        resources: resources,
        swiftSettings: swiftSettings
    )
}

/// A thin executable: reads configuration and runs the library's service group.
func executable(_ name: String, _ library: String) -> Target {
    .executableTarget(
        name: name,
        dependencies: [.byName(name: library), "RedressServiceKit"],
        swiftSettings: swiftSettings
    )
}

let package = Package(
    name: "redress",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "redress-intake", targets: ["redress-intake"]),
        .executable(name: "redress-routing", targets: ["redress-routing"]),
        .executable(name: "redress-cases", targets: ["redress-cases"]),
        .executable(name: "redress-notify", targets: ["redress-notify"]),
        .executable(name: "redress-surveys", targets: ["redress-surveys"]),
        .executable(name: "redress-supervisor", targets: ["redress-supervisor"]),
        .executable(name: "redress-console", targets: ["redress-console"]),
        .executable(name: "redress-devbroker", targets: ["redress-devbroker"]),
        .executable(name: "redressctl", targets: ["redressctl"]),
        .executable(name: "redress-bench", targets: ["redress-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
    ],
    targets: [
        // Pure domain: no I/O, no dependencies. Tested fast and exhaustively.
        .target(name: "RedressDomain", swiftSettings: swiftSettings),
        // Event envelope, event types, topics: what services say to each other.
        .target(name: "RedressContracts", dependencies: ["RedressDomain"], swiftSettings: swiftSettings),
        // librdkafka, found through pkg-config.
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        // The only place that calls librdkafka.
        .target(
            name: "RedressKafka",
            dependencies: [
                "CRdKafka",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // PostgreSQL: migrations, outbox, inbox.
        .target(
            name: "RedressStore",
            dependencies: [
                "RedressDomain", "RedressContracts",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // What every service shares: configuration, logging, metrics, HTTP, auth, relay, consumer.
        .target(
            name: "RedressServiceKit",
            dependencies: [
                "RedressDomain", "RedressContracts", "RedressStore", "RedressKafka",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ] + nio,
            swiftSettings: swiftSettings
        ),
        serviceLibrary("RedressIntake"),
        serviceLibrary("RedressRouting", [
            .product(name: "Yams", package: "Yams"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
        ]),
        serviceLibrary("RedressCases"),
        serviceLibrary("RedressNotify", [.product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "Mustache", package: "swift-mustache")] + nio),
        // The customer's pages (return visit, status look-up) are served here, the public-facing service.
        serviceLibrary("RedressSurveys", [.product(name: "Crypto", package: "swift-crypto"), .product(name: "Mustache", package: "swift-mustache")] + nio,
                       resources: [.copy("Resources")]),
        serviceLibrary("RedressSupervisor"),
        // The staff console: server-rendered pages over the staff API, sessions in PostgreSQL.
        .target(
            name: "RedressConsole",
            dependencies: [
                "RedressDomain", "RedressContracts", "RedressStore", "RedressServiceKit",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "HummingbirdOTP", package: "hummingbird-auth"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ] + nio,
            resources: [.copy("Resources")],
            swiftSettings: swiftSettings
        ),
        executable("redress-intake", "RedressIntake"),
        executable("redress-routing", "RedressRouting"),
        executable("redress-cases", "RedressCases"),
        executable("redress-notify", "RedressNotify"),
        executable("redress-surveys", "RedressSurveys"),
        executable("redress-supervisor", "RedressSupervisor"),
        executable("redress-console", "RedressConsole"),
        .executableTarget(
            name: "redress-devbroker",
            dependencies: [
                "RedressKafka", "RedressContracts",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "redressctl",
            dependencies: [
                "RedressDomain", "RedressContracts", "RedressStore", "RedressKafka", "RedressServiceKit", "RedressRouting", "RedressSupervisor",
                "RedressCases", "RedressConsole",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "redress-bench",
            dependencies: [
                "RedressDomain", "RedressContracts", "RedressStore", "RedressKafka", "RedressServiceKit", "RedressSupervisor", "RedressConsole",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // Pure logic: no database, no broker.
        .testTarget(
            name: "RedressUnitTests",
            dependencies: ["RedressDomain", "RedressContracts", "RedressStore", "RedressServiceKit", "RedressRouting", "RedressNotify", "RedressConsole",
                           .product(name: "PropertyBased", package: "swift-property-based"),
                           .product(name: "JWTKit", package: "jwt-kit"), .product(name: "CryptoExtras", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RedressIntegrationTests",
            dependencies: [
                "RedressDomain", "RedressContracts", "RedressStore", "RedressKafka", "RedressServiceKit",
                "RedressIntake", "RedressRouting", "RedressCases", "RedressNotify", "RedressSurveys", "RedressSupervisor",
                "RedressConsole",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
