import Foundation
import RAPQ

/// The readers a user's files reach, one fuzz target each. `RAPQ_FUZZ_TARGET` names the target every
/// input goes to; without it (or with `all`) the first byte of an input chooses one (its value modulo the
/// number of targets, in the order below) and the rest is the file.
enum FuzzTarget: String, CaseIterable {
    /// An ONNX model: importer, shape inference, and the FP32 executor on small models.
    case onnx
    /// A `.npy` array.
    case npy
    /// A `.rapq` file: its reader, the static checks, the simulation and the integer engine.
    case rapq
    /// A `.rapq` manifest, wrapped with valid checksums around the payload of `ManifestFuzzing.reference`, so
    /// that mutations reach the manifest's checks and the engines instead of failing the checksum.
    case manifest
    /// A checkpoint's `state.json` beside the reference network; tried as it is and with its checksum
    /// recomputed, so that mutated positions, phases and fingerprints reach the consistency checks.
    case checkpoint
    /// The payload of a `.rapq` file (the serialized graph, then the packed weight codes) behind the manifest
    /// of `ManifestFuzzing.reference` with the payload's size and checksum recomputed, so that mutations reach
    /// the graph decoder, the code unpacking and the engines.
    case payload

    /// The target `RAPQ_FUZZ_TARGET` names (nil for all).
    static let chosen: FuzzTarget? = ProcessInfo.processInfo.environment["RAPQ_FUZZ_TARGET"].flatMap(FuzzTarget.init(rawValue:))
}

/// One fuzz input through its reader. A reader must throw or succeed; what it accepts must then pass through
/// the rest of the pipeline without trapping. Any crash is a finding. Returns whether the reader accepted it.
@discardableResult
func fuzzOne(_ data: Data) -> Bool {
    let target: FuzzTarget, body: Data
    if let chosen = FuzzTarget.chosen {
        (target, body) = (chosen, data)
    } else {
        guard let selector = data.first else { return false }
        (target, body) = (FuzzTarget.allCases[Int(selector) % FuzzTarget.allCases.count], Data(data.dropFirst()))
    }
    switch target {
    case .onnx:
        guard let graph = try? ONNXImporter.load(data: body, externalDataDirectory: nil) else { return false }
        guard let shapes = try? inferShapes(of: graph, batch: 1) else { return true }
        // Run only models that are cheap to run, so the fuzzer keeps its pace.
        let cost = graph.nodes.map { LayerCost(node: $0, graph: graph, shapes: shapes).multiplyAccumulates }.reduce(0) { $0.addingReportingOverflow($1).overflow ? .max : $0 + $1 }
        guard cost < 1 << 22, shapes.values.allSatisfy({ $0.reduce(1, *) < 1 << 18 }), let input = graph.inputs.first,
              let shape = shapes[input.name], let model = try? FloatModel(graph: graph) else { return true }
        _ = try? model.predict(Tensor(shape: shape, repeating: 0.5), batchSize: 1)
        return true
    case .npy:
        return (try? NumpyFile.tensor(from: body, path: "fuzz.npy")) != nil
    case .rapq, .manifest, .payload:
        let file: Data?
        switch target {
        case .rapq: file = body
        case .manifest: file = ManifestFuzzing.file(manifest: body)
        default: file = ManifestFuzzing.file(payload: body)
        }
        guard let file, let network = try? RAPQFile.decode(file) else { return false }
        run(network)
        return true
    case .checkpoint:
        var accepted = false
        for state in [body, CheckpointFuzzing.sealed(body)].compactMap({ $0 }) {
            if let network = CheckpointFuzzing.load(state: state) { run(network); accepted = true }
        }
        return accepted
    }
}

/// The static checks and both engines on a small input, for networks small enough to keep the pace.
private func run(_ network: QuantizedNetwork) {
    _ = staticChecks(of: network)
    guard let input = network.graph.inputs.first, let shapes = try? inferShapes(of: network.graph, batch: 1),
          shapes.values.allSatisfy({ $0.reduce(1, *) < 1 << 18 }), let shape = shapes[input.name] else { return }
    let x = Tensor(shape: shape, repeating: 0.25)
    _ = try? Simulation(network).predict(x, batchSize: 1)
    _ = try? IntegerEngine(network).predict(x, batchSize: 1)
}

/// Checkpoint folders for the fuzzer: `state.json` as fuzzed, `network.rapq` the reference network.
enum CheckpointFuzzing {
    static let fingerprint = "fuzz"
    /// Units of the run the checkpoint is checked against.
    static let units = 3

    /// This process's folder, with the reference network written once.
    static let folder: URL = {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rapq-fuzz-checkpoint-\(getpid())")
        try! FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try! ManifestFuzzing.reference.write(to: folder.appendingPathComponent("network.rapq"))
        return folder
    }()

    /// A valid state: the reference network after one unit of the weight phase (the checkpoint seed).
    static var seed: Data {
        let position = ReconstructionPosition(phase: "weights", completedUnits: 1)
        let networkCRC = CRC32.checksum(ManifestFuzzing.reference)
        let state: [String: Any] = [
            "format": CheckpointStore.format, "fingerprint": fingerprint,
            "position": ["phase": position.phase, "completedUnits": position.completedUnits],
            "networkCRC32": networkCRC,
            "stateCRC32": CheckpointStore.stateChecksum(format: CheckpointStore.format, fingerprint: fingerprint, position: position, networkCRC32: networkCRC),
        ]
        return try! JSONSerialization.data(withJSONObject: state, options: [.sortedKeys])
    }

    /// `state` with its `stateCRC32` recomputed from its other fields, when they have the right types.
    static func sealed(_ state: Data) -> Data? {
        guard var object = (try? JSONSerialization.jsonObject(with: state)) as? [String: Any],
              let format = object["format"] as? Int, let fingerprint = object["fingerprint"] as? String,
              let position = object["position"] as? [String: Any], let phase = position["phase"] as? String,
              let completed = position["completedUnits"] as? Int, let crc = object["networkCRC32"] as? Int,
              let networkCRC = UInt32(exactly: crc) else { return nil }
        object["stateCRC32"] = CheckpointStore.stateChecksum(format: format, fingerprint: fingerprint,
                                                             position: ReconstructionPosition(phase: phase, completedUnits: completed), networkCRC32: networkCRC)
        return try? JSONSerialization.data(withJSONObject: object)
    }

    /// The network a resume from `state` would continue with, if the store accepts it.
    static func load(state: Data) -> QuantizedNetwork? {
        guard (try? state.write(to: folder.appendingPathComponent("state.json"))) != nil,
              let store = try? CheckpointStore(folder: folder, fingerprint: fingerprint, create: false) else { return nil }
        return (try? store.load(units: units))?.network
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

    /// The reference file's manifest (the manifest seed).
    static var manifest: Data {
        let length = (12..<20).reduce(0) { $0 | Int(reference[$1]) << (8 * ($1 - 12)) }
        return reference.subdata(in: 24..<24 + length)
    }

    /// The reference file's payload (the payload seed).
    static var payload: Data {
        let length = (12..<20).reduce(0) { $0 | Int(reference[$1]) << (8 * ($1 - 12)) }
        return reference.suffix(from: 24 + length)
    }

    /// The reference file with `manifest` in place of its own and the manifest checksum recomputed.
    static func file(manifest json: Data, payload: Data = payload) -> Data {
        var out = reference.prefix(12)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: CRC32.checksum(json).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(payload)
        return out
    }

    /// The reference file with `payload` in place of its own, the manifest's payload size and checksum
    /// recomputed (nil if the manifest cannot be re-encoded, which does not happen for the reference).
    static func file(payload: Data) -> Data? {
        guard var object = (try? JSONSerialization.jsonObject(with: manifest)) as? [String: Any] else { return nil }
        object["payloadBytes"] = payload.count
        object["payloadCRC32"] = CRC32.checksum(payload)
        guard let json = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return nil }
        return file(manifest: json, payload: payload)
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
    _ = CheckpointFuzzing.folder
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { fuzzerTestOneInput($0, $1) }
}
#else
/// Without libFuzzer: replays the files given as arguments (a crash reproducer, or a corpus check).
@main
enum FuzzReplay {
    static func main() throws {
        // `--seeds DIR` writes the seeds fuzz/run.sh cannot copy from files: the manifest and the checkpoint state.
        if CommandLine.arguments.count == 3, CommandLine.arguments[1] == "--seeds" {
            let folder = URL(fileURLWithPath: CommandLine.arguments[2])
            try ManifestFuzzing.manifest.write(to: folder.appendingPathComponent("manifest-reference"))
            try CheckpointFuzzing.seed.write(to: folder.appendingPathComponent("checkpoint-state"))
            try ManifestFuzzing.payload.write(to: folder.appendingPathComponent("payload-reference"))
            return
        }
        var accepted = 0
        for path in CommandLine.arguments.dropFirst() where fuzzOne(try Data(contentsOf: URL(fileURLWithPath: path))) {
            accepted += 1
        }
        print("replayed \(CommandLine.arguments.count - 1) inputs without a crash (\(accepted) accepted by their reader)")
    }
}
#endif
