// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]
// The engine's state is confined to one serial queue per loop; the runtime
// exclusivity checks on its hot path cost ~8% of a request's CPU (perf, bench/README.md).
let engine: [SwiftSetting] = strict + [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "hailuo-hook",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "hailuo-hook", targets: ["hailuo-hook"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        // Tests only: the programs the tests run (Tests/ProcessSupport).
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.5.0"),
    ],
    targets: [
        // epoll, accept4 and sched_getaffinity, which Swift's Glibc module does not expose.
        .target(name: "CEpoll"),
        // zlib (zlib1g-dev): CRC-32 of journal records, gzip later.
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        // OpenSSL (libssl-dev): the listener's HTTPS.
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        // libpq (libpq-dev): the registry on PostgreSQL (registry.database_url).
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .target(
            name: "HTTPServer",
            dependencies: ["CEpoll", "CZlib", "COpenSSL", .product(name: "Logging", package: "swift-log")],
            swiftSettings: engine
        ),
        .target(
            name: "HailuoHook",
            dependencies: [
                "HTTPServer", "CZlib", "CLibPQ",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            resources: [.copy("Dashboard"), .copy("Resources/openapi.yaml")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "hailuo-hook",
            dependencies: [
                "HailuoHook", "HTTPServer", "COpenSSL",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // libFuzzer target (Tests/fuzz/run.sh); built normally it replays inputs.
        .executableTarget(
            name: "hailuo-fuzz",
            dependencies: ["HailuoHook", "HTTPServer"],
            swiftSettings: strict
        ),
        // The programs the tests start (the executable, curl, openssl), for both test targets.
        .target(
            name: "ProcessSupport",
            dependencies: [
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Tests/ProcessSupport",
            swiftSettings: strict
        ),
        .testTarget(name: "HTTPServerTests", dependencies: ["HTTPServer", "CZlib", "ProcessSupport"], swiftSettings: strict),
        .testTarget(name: "HailuoHookTests", dependencies: ["HailuoHook", "HTTPServer", "ProcessSupport"], swiftSettings: strict),
    ]
)
