// swift-tools-version: 6.1
import PackageDescription

// The grpc-swift-2 reference for `make bench-rpc`: a unary echo over grpc-swift-2's HTTP/2
// transport, in its own package so the main build never pays for grpc-swift and its
// dependencies (swift-nio-http2, swift-nio-ssl, swift-certificates, ...).
//
//   swift build -c release --package-path Benchmarks/GRPCReference --scratch-path .build-grpc-reference
let package = Package(
    name: "grpc-reference",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "grpc-reference-bench", targets: ["GRPCReference"])
    ],
    dependencies: [
        .package(url: "https://github.com/grpc/grpc-swift-2", exact: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", exact: "2.9.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        .executableTarget(
            name: "GRPCReference",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Sources/GRPCReference",
            swiftSettings: [.swiftLanguageMode(.v6)]
        )
    ]
)
