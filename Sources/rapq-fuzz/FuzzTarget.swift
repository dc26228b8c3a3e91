import Foundation
import RAPQ

/// One fuzz input through the readers a user's files reach. The first byte chooses the format (0: ONNX,
/// 1: `.npy`, 2: `.rapq`), the rest is the file. A reader must throw or succeed; what it accepts must then
/// pass through shape inference, the FP32 executor (on a small zero input), the static checks and the
/// engines without trapping. Any crash is a finding.
func fuzzOne(_ data: Data) {
    guard let selector = data.first else { return }
    let body = Data(data.dropFirst())
    switch selector % 3 {
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
        guard let network = try? RAPQFile.decode(body) else { return }
        _ = staticChecks(of: network)
        guard let input = network.graph.inputs.first, let shapes = try? inferShapes(of: network.graph, batch: 1),
              shapes.values.allSatisfy({ $0.reduce(1, *) < 1 << 18 }), let shape = shapes[input.name] else { return }
        let x = Tensor(shape: shape, repeating: 0.25)
        _ = try? Simulation(network).predict(x, batchSize: 1)
        _ = try? IntegerEngine(network).predict(x, batchSize: 1)
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
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { fuzzerTestOneInput($0, $1) }
}
#else
/// Without libFuzzer: replays the files given as arguments (a crash reproducer, or a corpus check).
@main
enum FuzzReplay {
    static func main() throws {
        for path in CommandLine.arguments.dropFirst() {
            fuzzOne(try Data(contentsOf: URL(fileURLWithPath: path)))
        }
        print("replayed \(CommandLine.arguments.count - 1) inputs without a crash")
    }
}
#endif
