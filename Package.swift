// swift-tools-version: 6.2
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "pgbackd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "pgbackd", targets: ["pgbackd"]),
        // Benchmarks (bench/): each builds alone, e.g. `swift build -c release --product pgbackd-bench-compression`.
        .executable(name: "pgbackd-bench-compression", targets: ["pgbackd-bench-compression"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swhitty/FlyingFox", from: "0.27.1"),
    ],
    targets: [
        // C libraries, found through pkg-config; the providers name the Debian packages to install.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // Whole-buffer deflate, 3× zlib's speed at level 6: the parallel backup compressor (decisions.md).
        .systemLibrary(name: "CDeflate", pkgConfig: "libdeflate", providers: [.apt(["libdeflate-dev"])]),
        // Authenticated streaming encryption and key wrapping for encrypted repositories (decisions.md).
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        // What Swift cannot call directly: variadic curl_easy_setopt, zlib's init macros, <malloc.h>.
        .target(name: "CShims", dependencies: ["CZlib", "CCurl"]),

        // Runs blocking C calls off Swift's cooperative pool.
        .target(name: "OffloadedWork", swiftSettings: strict),
        .target(
            name: "PostgresClient",
            dependencies: ["CLibPQ", "OffloadedWork", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(
            name: "Compression",
            dependencies: ["CShims", "CZlib", "CDeflate", "OffloadedWork"],
            swiftSettings: strict
        ),
        // What several modules share: the one durable file write, child processes, throw-away
        // PostgreSQL clusters. Below ObjectStorage, which writes files durably too.
        .target(
            name: "PGBackdSupport",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),
        // libcurl's owners: easy handles, their pool, one transfer; shared by S3 and webhooks.
        // libsodium's owners: repository keys, wrapped data keys, the secretstream of one object.
        .target(name: "Encryption", dependencies: ["CSodium", "PGBackdSupport", "ObjectStorage"], swiftSettings: strict),
        .target(name: "CurlHTTP", dependencies: ["CShims", "CCurl", "OffloadedWork"], swiftSettings: strict),
        .target(
            name: "ObjectStorage",
            dependencies: [
                "CShims", "CCurl", "CurlHTTP", "OffloadedWork", "PGBackdSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "PGBackupCore",
            dependencies: [
                "PostgresClient", "Compression", "ObjectStorage", "CurlHTTP", "CShims", "OffloadedWork", "PGBackdSupport", "Encryption",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "FlyingFox", package: "FlyingFox"),
                .product(name: "FlyingSocks", package: "FlyingFox"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "pgbackd",
            dependencies: [
                "PGBackupCore", "Encryption",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        // Synthetic pg_dump-like text, the same bytes every run: for the compression tests and benchmark.
        .target(name: "SyntheticData", path: "Tests/SyntheticData", swiftSettings: strict),
        .executableTarget(
            name: "pgbackd-bench-compression",
            dependencies: ["Compression", "CZlib", "SyntheticData"],
            path: "bench/compression/Sources",
            swiftSettings: strict
        ),

        .testTarget(name: "EncryptionTests", dependencies: ["Encryption"], swiftSettings: strict),
        .testTarget(name: "PGBackdSupportTests", dependencies: ["PGBackdSupport"], swiftSettings: strict),
        .testTarget(name: "CompressionTests", dependencies: ["Compression", "CZlib", "SyntheticData"], swiftSettings: strict),
        .testTarget(name: "ObjectStorageTests", dependencies: ["ObjectStorage", "CurlHTTP", "Encryption"], swiftSettings: strict),
        .testTarget(
            name: "PGBackupCoreTests",
            dependencies: ["PGBackupCore", "ObjectStorage", "Compression", "CurlHTTP", "Encryption", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "PGBackupCore", "Compression", "Encryption", "ObjectStorage", "PostgresClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // Run by the tests from the source tree (found through #filePath), not compiled.
            exclude: [
                "Support/outage-proxy.py", "Support/gate-proxy.py", "Support/scrape-metrics.py", "Support/fault-proxy.py",
                "Reliability/tls-front.py",
            ],
            swiftSettings: strict
        ),
    ]
)
