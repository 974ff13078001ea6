// swift-tools-version: 6.1
import PackageDescription

// The folder tree is the architecture (see README.md, "Layout"):
//   proto/        the contract
//   Sources/      shared libraries and tools: protobuf-c bridge, wire codec, RPC runtime, CLI
//   services/     one folder per service: its library, its thin `main`, its Dockerfile
//   Tests/        mirrors the targets, plus end-to-end tests that start the real executables
//   Benchmarks/   programs that print figures (`make bench-<area>`)

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    // The bridge is generic (visitors over generated field lists); letting the optimiser see across
    // modules specialises it for each message, which is most of its speed.
    .unsafeFlags(["-cross-module-optimization"], .when(configuration: .release)),
]

let serviceDependencies: [Target.Dependency] = [
    "PlatosService", "PlatosStorage", "PlatosAuth", "PlatosRPC", "PlatosProto", "ProtobufCSwift",
    .product(name: "GRDB", package: "GRDB.swift"),
    .product(name: "Logging", package: "swift-log"),
    .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
]
let serviceTestDependencies: [Target.Dependency] = [
    "PlatosService", "PlatosStorage", "PlatosAuth", "PlatosRPC", "PlatosProto", "ProtobufCSwift", "PlatosTestSupport",
    .product(name: "GRDB", package: "GRDB.swift"),
    .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
]

let package = Package(
    name: "platos",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "platos", targets: ["PlatosCLIMain"]),
        .executable(name: "platos-protogen", targets: ["ProtoGen"]),
        .executable(name: "platos-bench-codec", targets: ["CodecBenchmark"]),
        .executable(name: "platos-bench-rpc", targets: ["RPCBenchmark"]),
        .executable(name: "platos-registry", targets: ["RegistryMain"]),
        .executable(name: "platos-memory", targets: ["MemoryMain"]),
        .executable(name: "platos-threads", targets: ["ThreadsMain"]),
        .executable(name: "platos-gateway", targets: ["GatewayMain"]),
        .executable(name: "platos-bench-registry", targets: ["RegistryBenchmark"]),
        .executable(name: "platos-bench-memory", targets: ["MemoryBenchmark"]),
        .executable(name: "platos-bench-threads", targets: ["ThreadsBenchmark"]),
        .executable(name: "platos-load", targets: ["PlatosLoad"]),
        .executable(name: "platos-bench-gateway", targets: ["GatewayBenchmark"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // MARK: protobuf-c and the generic Swift bridge
        .systemLibrary(
            name: "CProtobufC",
            pkgConfig: "libprotobuf-c",
            providers: [.apt(["libprotobuf-c-dev"])]
        ),
        // glibc's mallopt, for the services' allocator tuning (PlatosService/MallocTuning.swift).
        .systemLibrary(name: "CGlibcMalloc"),
        .target(
            name: "CPlatosProto",
            dependencies: ["CProtobufC"],
            cSettings: [.unsafeFlags(["-Wno-unused-parameter"])]
        ),
        .target(name: "ProtobufCSwift", dependencies: ["CProtobufC"], swiftSettings: swiftSettings),
        .target(
            name: "PlatosProto",
            dependencies: ["CPlatosProto", "ProtobufCSwift"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(name: "ProtoGen", dependencies: ["CPlatosProto"], swiftSettings: swiftSettings),

        // MARK: wire
        .target(
            name: "PlatosWire",
            dependencies: ["PlatosProto", "ProtobufCSwift", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),

        // MARK: RPC runtime
        .target(
            name: "PlatosRPC",
            dependencies: [
                "PlatosWire", "PlatosProto", "ProtobufCSwift",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: identity: the gateway's signed principal, verified by every backend
        .target(
            name: "PlatosAuth",
            dependencies: [
                "PlatosRPC", "PlatosProto", "ProtobufCSwift",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: what every backend shares: storage, signed-principal routing, process runner
        .target(
            name: "PlatosStorage",
            dependencies: [
                "PlatosRPC",
                .product(name: "GRDB", package: "GRDB.swift"),
                // The C API, for the progress handler that bounds a read on the caller's thread.
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PlatosService",
            dependencies: [
                "PlatosAuth", "PlatosRPC", "PlatosProto", "PlatosStorage", "CGlibcMalloc",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: services (services/<name>/: library, thin main, Dockerfile)
        .target(
            name: "RegistryService",
            dependencies: serviceDependencies + [.product(name: "Crypto", package: "swift-crypto")],
            path: "services/registry/Sources/RegistryService",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "RegistryMain", dependencies: ["RegistryService", "PlatosService"],
            path: "services/registry/Sources/RegistryMain", swiftSettings: swiftSettings
        ),
        .target(
            name: "MemoryService",
            dependencies: serviceDependencies + [.product(name: "Crypto", package: "swift-crypto")],
            path: "services/memory/Sources/MemoryService",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "MemoryMain", dependencies: ["MemoryService", "PlatosService"],
            path: "services/memory/Sources/MemoryMain", swiftSettings: swiftSettings
        ),
        .target(
            name: "ThreadsService",
            dependencies: serviceDependencies,
            path: "services/threads/Sources/ThreadsService",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "ThreadsMain", dependencies: ["ThreadsService", "PlatosService"],
            path: "services/threads/Sources/ThreadsMain", swiftSettings: swiftSettings
        ),

        .target(
            name: "GatewayService",
            dependencies: serviceDependencies + [.product(name: "Crypto", package: "swift-crypto")],
            path: "services/gateway/Sources/GatewayService",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "GatewayMain", dependencies: ["GatewayService", "PlatosService"],
            path: "services/gateway/Sources/GatewayMain", swiftSettings: swiftSettings
        ),

        // MARK: the `platos` CLI: dev stack, generic calls, admin shortcuts
        .target(
            name: "PlatosCLI",
            dependencies: [
                "PlatosRPC", "PlatosProto", "ProtobufCSwift", "CProtobufC",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(name: "PlatosCLIMain", dependencies: ["PlatosCLI"], swiftSettings: swiftSettings),

        // MARK: benchmarks
        .target(name: "CRawProtobufBench", dependencies: ["CPlatosProto"], path: "Benchmarks/CRawProtobufBench"),
        .executableTarget(
            name: "CodecBenchmark",
            dependencies: ["PlatosProto", "PlatosWire", "CRawProtobufBench"],
            path: "Benchmarks/CodecBenchmark",
            swiftSettings: swiftSettings
        ),

        .executableTarget(
            name: "RPCBenchmark",
            dependencies: [
                "PlatosRPC", "PlatosProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Benchmarks/RPCBenchmark",
            swiftSettings: swiftSettings
        ),

        .executableTarget(
            name: "RegistryBenchmark",
            dependencies: serviceDependencies + [
                "RegistryService", "BenchmarkSupport", .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Benchmarks/RegistryBenchmark", swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "MemoryBenchmark",
            dependencies: serviceDependencies + [
                "MemoryService", "BenchmarkSupport", .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Benchmarks/MemoryBenchmark", swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "ThreadsBenchmark",
            dependencies: serviceDependencies + [
                "ThreadsService", "BenchmarkSupport", .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Benchmarks/ThreadsBenchmark", swiftSettings: swiftSettings
        ),

        // The load engine, loopback endpoints and child processes shared by platos-load and the
        // benchmarks that start services.
        .target(
            name: "BenchmarkSupport",
            dependencies: [
                "PlatosRPC",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            path: "Benchmarks/BenchmarkSupport", swiftSettings: swiftSettings
        ),
        // platos-load: the load generator against the gateway (DESIGN §7), useful on its own.
        .executableTarget(
            name: "PlatosLoad",
            dependencies: ["BenchmarkSupport", "PlatosAuth", "PlatosRPC", "PlatosProto", "ProtobufCSwift"],
            path: "Benchmarks/PlatosLoad", swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "GatewayBenchmark",
            dependencies: ["BenchmarkSupport", "PlatosRPC", "PlatosProto"],
            path: "Benchmarks/GatewayBenchmark", swiftSettings: swiftSettings
        ),

        // MARK: tests
        .testTarget(
            name: "ProtobufCSwiftTests",
            dependencies: ["PlatosProto", "ProtobufCSwift", "CPlatosProto"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PlatosRPCTests",
            dependencies: [
                "PlatosRPC", "PlatosProto", "PlatosWire", "PlatosTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PlatosAuthTests",
            dependencies: ["PlatosAuth", "PlatosRPC", "PlatosProto", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "RegistryServiceTests", dependencies: serviceTestDependencies + ["RegistryService"], swiftSettings: swiftSettings),
        .testTarget(name: "MemoryServiceTests", dependencies: serviceTestDependencies + ["MemoryService"], swiftSettings: swiftSettings),
        .testTarget(name: "ThreadsServiceTests", dependencies: serviceTestDependencies + ["ThreadsService"], swiftSettings: swiftSettings),
        .testTarget(
            name: "GatewayServiceTests", dependencies: ["GatewayService", "PlatosAuth", "PlatosProto", "PlatosRPC", "PlatosService"], swiftSettings: swiftSettings),
        .testTarget(
            name: "PlatosStorageTests",
            dependencies: ["PlatosStorage", "PlatosTestSupport", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: swiftSettings
        ),
        // Helpers shared by test targets: a raw HTTP client, a Prometheus text reader, a raw socket.
        .target(
            name: "PlatosTestSupport",
            dependencies: [
                "PlatosProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/PlatosTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PlatosServiceTests",
            dependencies: [
                "PlatosService", "PlatosTestSupport",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "EndToEndTests", dependencies: serviceTestDependencies, swiftSettings: swiftSettings),
        .testTarget(name: "PlatosCLITests", dependencies: ["PlatosCLI", "PlatosProto", "PlatosRPC", "ProtobufCSwift"], swiftSettings: swiftSettings),
        .testTarget(
            name: "PlatosWireTests",
            dependencies: [
                "PlatosWire", "PlatosProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
