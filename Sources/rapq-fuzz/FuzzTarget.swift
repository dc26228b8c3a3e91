import Foundation
import RAPQ

/// One fuzz input through the readers a user's files reach. The first byte chooses the format (0: ONNX,
/// 1: `.npy`, 2: `.rapq`, 3: a `.rapq` manifest, wrapped with valid checksums around the payload of
/// `ManifestFuzzing.reference`, so that mutations reach the manifest's checks and the engines instead of
/// failing the checksum), the rest is the file. A reader must throw or succeed; what it accepts must then
/// pass through shape inference, the FP32 executor (on a small zero input), the static checks and the
/// engines without trapping. Any crash is a finding.
func fuzzOne(_ data: Data) {
    guard let selector = data.first else { return }
    let body = Data(data.dropFirst())
    switch selector % 4 {
    case 0:
        guard let graph = try? ONNXImporter.load(data: body, externalDataDirectory: nil) else { return }
        guard let shapes = try? inferShapes(of: graph, batch: 1) else { return }
        // Run only models that are cheap to run, so the fuzzer keeps its pace.
        let cost = graph.nodes.map { LayerCost(node: $0, graph: graph, shapes: shapes).multiplyAccumulates }.reduce(0) { $0.addingReportingOverflow($1).overflow ? .max : $0 + $1 }
        guard cost < 1 << 22, shapes.values.allSatisfy({ $0.reduce(1, *) < 1 << 18 }), let input = graph.inputs.first,
              let shape = shapes[input.name], let model = try? FloatModel(graph: graph) else { return }
        _ = try? model.predict(Tensor(shape: shape, repeating: 0.5), batchSize: 1)
    case 1:
        _ = try? NumpyFile.tensor(from: body, path: "fuzz.npy")
    default:
        guard let network = try? RAPQFile.decode(selector % 4 == 2 ? body : ManifestFuzzing.file(manifest: body)) else { return }
        _ = staticChecks(of: network)
        guard let input = network.graph.inputs.first, let shapes = try? inferShapes(of: network.graph, batch: 1),
              shapes.values.allSatisfy({ $0.reduce(1, *) < 1 << 18 }), let shape = shapes[input.name] else { return }
        let x = Tensor(shape: shape, repeating: 0.25)
        _ = try? Simulation(network).predict(x, batchSize: 1)
        _ = try? IntegerEngine(network).predict(x, batchSize: 1)
    }
}

/// A `.rapq` file around a fuzzed manifest: the payload of a small valid network, checksums recomputed.
enum ManifestFuzzing {
    /// x [N, 1, 6, 6] -> Conv 3x3 (2 filters) -> Relu -> GlobalAveragePool -> Flatten -> Gemm (3 classes),
    /// quantized with pot-mse at W2A4: small, so that the engines run thousands of times a second.
    static let reference: Data = {
        func values(_ count: Int, _ seed: Int) -> [Float] { (0..<count).map { Float(($0 * 7 + seed * 13) % 17) / 8 - 1 } }
        let graph = Graph(
            name: "fuzz", inputs: [ValueInfo(name: "x", dimensions: [nil, 1, 6, 6])], outputs: [ValueInfo(name: "y", dimensions: [nil, 3])],
            nodes: [
                Node(name: "conv", op: .conv(Conv2DParameters(window: WindowGeometry(kernel: (3, 3)))), inputs: ["x", "w", "b"], outputs: ["c"]),
                Node(name: "relu", op: .relu, inputs: ["c"], outputs: ["r"]),
                Node(name: "pool", op: .globalAveragePool, inputs: ["r"], outputs: ["p"]),
                Node(name: "flatten", op: .flatten(axis: 1), inputs: ["p"], outputs: ["f"]),
                Node(name: "gemm", op: .gemm(alpha: 1, beta: 1, transA: false, transB: true), inputs: ["f", "wg", "bg"], outputs: ["y"]),
            ],
            initializers: ["w": Tensor(shape: [2, 1, 3, 3], data: values(18, 1)), "b": Tensor(shape: [2], data: values(2, 2)),
                           "wg": Tensor(shape: [3, 2], data: values(6, 3)), "bg": Tensor(shape: [3], data: values(3, 4))])
        let samples = Tensor(shape: [4, 1, 6, 6], data: values(144, 5))
        let network = try! quantize(model: graph, calibration: samples,
                                    configuration: QuantizationConfiguration(method: .potMse, weightBits: 2, activationBits: 4))
        return try! RAPQFile.encode(network)
    }()

    /// The reference file's manifest (a seed for selector 3).
    static var manifest: Data {
        let length = (12..<20).reduce(0) { $0 | Int(reference[$1]) << (8 * ($1 - 12)) }
        return reference.subdata(in: 24..<24 + length)
    }

    /// The reference file with `manifest` in place of its own and the manifest checksum recomputed.
    static func file(manifest json: Data) -> Data {
        let length = (12..<20).reduce(0) { $0 | Int(reference[$1]) << (8 * ($1 - 12)) }
        var out = reference.prefix(12)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: CRC32.checksum(json).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(reference.suffix(from: 24 + length))
        return out
    }
}

#if FUZZING
/// The libFuzzer entry point (built by `fuzz/run.sh` with `-sanitize=fuzzer,address`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    fuzzOne(Data(bytes: bytes, count: count))
    return 0
}

/// libFuzzer's driver, for programs that have their own `main`.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt

/// SwiftPM links an executable's entry point under the name `<module>_main`; it hands over to libFuzzer.
@_cdecl("rapq_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    // Built before the first input, so the leak checker does not count this one-time value as a leak.
    _ = ManifestFuzzing.reference
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { fuzzerTestOneInput($0, $1) }
}
#else
/// Without libFuzzer: replays the files given as arguments (a crash reproducer, or a corpus check).
@main
enum FuzzReplay {
    static func main() throws {
        // `--manifest-seed FILE` writes the seed of selector 3 for fuzz/run.sh.
        if CommandLine.arguments.count == 3, CommandLine.arguments[1] == "--manifest-seed" {
            try (Data([3]) + ManifestFuzzing.manifest).write(to: URL(fileURLWithPath: CommandLine.arguments[2]))
            return
        }
        for path in CommandLine.arguments.dropFirst() {
            fuzzOne(try Data(contentsOf: URL(fileURLWithPath: path)))
        }
        print("replayed \(CommandLine.arguments.count - 1) inputs without a crash")
    }
}
#endif
