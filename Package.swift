// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "RAPQ",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "RAPQ", targets: ["RAPQ"]),
        .executable(name: "rapq", targets: ["rapq"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CBLAS",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .systemLibrary(name: "CMalloc"),
        .systemLibrary(name: "CJPEG", providers: [.apt(["libjpeg62-turbo-dev"])]),
        .systemLibrary(name: "CPNG", providers: [.apt(["libpng-dev"])]),
        // The decoders' C side: each decode runs behind one setjmp, so libjpeg's and libpng's longjmp on an
        // error never crosses Swift frames.
        .target(name: "ImageCodecs", dependencies: ["CJPEG", "CPNG"],
                linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png16")]),
        .target(name: "DepthwiseAVX2", swiftSettings: optimizedInDebug + avx2),
        .target(name: "TensorKernels", dependencies: ["CBLAS", "CMalloc", "DepthwiseAVX2"], exclude: ["README.md"],
                swiftSettings: optimizedInDebug),
        .target(name: "Graph", dependencies: ["TensorKernels"], exclude: ["README.md"], swiftSettings: optimizedInDebug),
        .target(
            name: "ONNX",
            dependencies: ["Graph", "DataIO", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["onnx-subset.proto", "README.md"]
        ),
        .target(name: "DataIO", dependencies: ["TensorKernels", "ImageCodecs"], exclude: ["README.md"], swiftSettings: optimizedInDebug),
        .target(name: "Quantization", dependencies: ["Graph", "ONNX", "DataIO"], exclude: ["README.md", "Export/README.md", "Integer/README.md"],
                swiftSettings: optimizedInDebug),
        .target(name: "Reconstruction", dependencies: ["Quantization", "DataIO"], exclude: ["README.md"], swiftSettings: optimizedInDebug),
        .target(
            name: "RAPQ",
            dependencies: ["Reconstruction", "Quantization", "ONNX", "Graph", "DataIO", "TensorKernels"],
            exclude: ["README.md"]
        ),
        .executableTarget(
            name: "rapq",
            dependencies: ["RAPQ", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "rapq-bench",
            dependencies: ["RAPQ"]
        ),
        // The fuzz target: `fuzz/run.sh` builds it with libFuzzer; a normal build replays files given as arguments.
        .executableTarget(
            name: "rapq-fuzz",
            dependencies: ["RAPQ"]
        ),
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "TensorKernelsTests", dependencies: ["TensorKernels"]),
        .testTarget(name: "DataIOTests", dependencies: ["DataIO", "TestSupport"], exclude: ["Resources"]),
        .testTarget(name: "GraphTests", dependencies: ["Graph", "ONNX", "DataIO"], resources: [.copy("Resources")]),
        .testTarget(name: "ONNXTests", dependencies: ["ONNX", "Graph"], resources: [.copy("Resources")]),
        .testTarget(name: "QuantizationTests", dependencies: ["Quantization", "DataIO", "ONNX", "TestSupport"]),
        .testTarget(name: "ReconstructionTests", dependencies: ["Reconstruction", "Quantization", "Graph"]),
        .testTarget(name: "EndToEndTests", dependencies: ["RAPQ", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)

/// The numeric targets are optimised in debug builds too: their hot loops run 10-50x slower unoptimised,
/// which would make `swift test` (a debug build) take tens of minutes. Testability is kept.
var optimizedInDebug: [SwiftSetting] { [.unsafeFlags(["-O", "-enable-testing"], .when(configuration: .debug))] }

/// `DepthwiseAVX2` is the depthwise inner loop (a link to `TensorKernels/DepthwiseRows.swift`) compiled for
/// AVX2; `TensorKernels` calls it only on CPUs that have AVX2 (`VectorUnit`), everything else stays
/// baseline x86-64. Other architectures compile it like the rest.
var avx2: [SwiftSetting] {
    #if arch(x86_64)
    [.unsafeFlags(["-Xcc", "-mavx2"])]
    #else
    []
    #endif
}
