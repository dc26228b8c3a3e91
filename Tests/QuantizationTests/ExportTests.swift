import DataIO
import Foundation
import Graph
import ONNX
import TensorKernels
import XCTest
import TestSupport
@testable import Quantization

/// The `.rapq` file format and the QDQ ONNX export, on a small network with every structure they must
/// handle: a folded BN, a residual block, MaxPool before a depthwise conv with ReLU6, a bias-less 1x1
/// conv, global average pooling, Flatten and a Gemm classifier.
final class ExportTests: XCTestCase {
    // MARK: - Fixtures

    /// The four settings the tests run: W4A4 and W2A4, asymmetric and symmetric weights.
    static let settings: [(name: String, options: CalibrationOptions)] = [
        ("W4A4 asymmetric", CalibrationOptions(bits: BitWidths(weights: 4, activations: 4), scalePolicy: .bestPowerOfTwo)),
        ("W4A4 symmetric", CalibrationOptions(bits: BitWidths(weights: 4, activations: 4), scalePolicy: .bestPowerOfTwo, symmetricWeights: true)),
        ("W2A4 asymmetric", CalibrationOptions(bits: BitWidths(weights: 2, activations: 4), scalePolicy: .bestPowerOfTwo)),
        ("W2A4 symmetric", CalibrationOptions(bits: BitWidths(weights: 2, activations: 4), scalePolicy: .bestPowerOfTwo, symmetricWeights: true)),
    ]

    /// A deterministic pseudo-random source (SeededGenerator).
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        /// Uniform in [-1, 1).
        mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 23) - 1 }
        mutating func tensor(_ shape: [Int], scale: Float) -> Tensor {
            Tensor(shape: shape, data: (0..<shape.shapeProduct).map { _ in uniform() * scale })
        }
    }

    static func makeGraph() -> Graph {
        var r = Random(state: 42)
        let same3 = Conv2DParameters(window: WindowGeometry(kernel: (3, 3), pads: (1, 1, 1, 1)))
        let dw = Conv2DParameters(window: WindowGeometry(kernel: (3, 3), pads: (1, 1, 1, 1)), groups: 8)
        let pointwise = Conv2DParameters(window: WindowGeometry(kernel: (1, 1)))
        let nodes = [
            Node(name: "conv1", op: .conv(same3), inputs: ["input", "conv1.w", "conv1.b"], outputs: ["c1"]),
            Node(name: "bn1", op: .batchNormalization(epsilon: 1e-5), inputs: ["c1", "bn1.g", "bn1.b", "bn1.m", "bn1.v"], outputs: ["b1"]),
            Node(name: "relu1", op: .relu, inputs: ["b1"], outputs: ["r1"]),
            Node(name: "conv2", op: .conv(same3), inputs: ["r1", "conv2.w", "conv2.b"], outputs: ["c2"]),
            Node(name: "relu2", op: .relu, inputs: ["c2"], outputs: ["r2"]),
            Node(name: "conv3", op: .conv(same3), inputs: ["r2", "conv3.w", "conv3.b"], outputs: ["c3"]),
            Node(name: "add", op: .add, inputs: ["c3", "r1"], outputs: ["s"]),
            Node(name: "relu3", op: .relu, inputs: ["s"], outputs: ["r3"]),
            Node(name: "pool", op: .maxPool(WindowGeometry(kernel: (2, 2), strides: (2, 2))), inputs: ["r3"], outputs: ["m"]),
            Node(name: "dw", op: .conv(dw), inputs: ["m", "dw.w", "dw.b"], outputs: ["d"]),
            Node(name: "relu6", op: .clip(min: 0, max: 6), inputs: ["d"], outputs: ["d6"]),
            Node(name: "project", op: .conv(pointwise), inputs: ["d6", "project.w"], outputs: ["p"]),
            Node(name: "gap", op: .globalAveragePool, inputs: ["p"], outputs: ["g"]),
            Node(name: "flatten", op: .flatten(axis: 1), inputs: ["g"], outputs: ["f"]),
            Node(name: "fc", op: .gemm(alpha: 1, beta: 1, transA: false, transB: true), inputs: ["f", "fc.w", "fc.b"], outputs: ["logits"]),
        ]
        let initializers: [String: Tensor] = [
            "conv1.w": r.tensor([8, 3, 3, 3], scale: 0.5), "conv1.b": r.tensor([8], scale: 0.1),
            "bn1.g": Tensor(shape: [8], data: (0..<8).map { _ in 1 + 0.3 * r.uniform() }), "bn1.b": r.tensor([8], scale: 0.2),
            "bn1.m": r.tensor([8], scale: 0.1), "bn1.v": Tensor(shape: [8], data: (0..<8).map { _ in 1 + 0.5 * r.uniform() }),
            "conv2.w": r.tensor([8, 8, 3, 3], scale: 0.25), "conv2.b": r.tensor([8], scale: 0.1),
            "conv3.w": r.tensor([8, 8, 3, 3], scale: 0.25), "conv3.b": r.tensor([8], scale: 0.1),
            "dw.w": r.tensor([8, 1, 3, 3], scale: 0.6), "dw.b": r.tensor([8], scale: 0.2),
            "project.w": r.tensor([16, 8, 1, 1], scale: 0.5),
            "fc.w": r.tensor([10, 16], scale: 0.5), "fc.b": r.tensor([10], scale: 0.1),
        ]
        return Graph(name: "export-test", inputs: [ValueInfo(name: "input", dimensions: [nil, 3, 8, 8])],
                     outputs: [ValueInfo(name: "logits", dimensions: [nil, 10])], nodes: nodes, initializers: initializers)
    }

    static func samples(_ count: Int, seed: UInt64) -> Tensor {
        var r = Random(state: seed)
        return r.tensor([count, 3, 8, 8], scale: 2)
    }

    static func network(_ options: CalibrationOptions, method: String = "pot-mse") throws -> QuantizedNetwork {
        try calibrate(PreparedNetwork(makeGraph()), calibration: samples(32, seed: 7), options: options, method: method)
    }

    /// The same on the graph rescaled by `ActivationAlignment` (rapq's default; the ReLU6 becomes a Clip at 6 x its factor).
    static func alignedNetwork(_ options: CalibrationOptions) throws -> QuantizedNetwork {
        var prepared = PreparedNetwork(makeGraph())
        let data = samples(32, seed: 7)
        try ActivationAlignment.apply(to: &prepared, sites: placeActivationQuantizers(in: prepared.graph, units: prepared.units, bits: options.bits),
                                      calibration: data, count: 32)
        return try calibrate(prepared, calibration: data, options: options, method: "rapq")
    }

    // MARK: - .rapq round trip

    func testRoundTripGivesAnEqualNetworkAndIdenticalBytes() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rapq-export-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let x = Self.samples(8, seed: 99)
        for (name, options) in Self.settings {
            let network = try Self.network(options)
            let url = folder.appendingPathComponent("\(name).rapq")
            try RAPQFile.write(network, to: url)
            let loaded = try RAPQFile.read(contentsOf: url)
            assertEquivalent(network, loaded, name)
            let bytes = try Data(contentsOf: url)
            XCTAssertEqual(try RAPQFile.encode(network), bytes, "\(name): encoding is deterministic")
            XCTAssertEqual(try RAPQFile.encode(loaded), bytes, "\(name): re-encoding the loaded network gives the same bytes")
            let before = try Simulation(network).predict(x), after = try Simulation(loaded).predict(x)
            XCTAssertEqual(before.shape, after.shape)
            XCTAssertEqual(before.data.map(\.bitPattern), after.data.map(\.bitPattern), "\(name): simulated logits are bit-identical")
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasPrefix(".") }, [],
                           "no temporary file is left behind")
        }
    }

    /// Everything a network holds, compared bit for bit; the layers' weight initializers come back as the
    /// dequantized codes (the file stores codes, not the float weights) and the biases exactly.
    func assertEquivalent(_ a: QuantizedNetwork, _ b: QuantizedNetwork, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.method, b.method, label, file: file, line: line)
        XCTAssertEqual(a.bits, b.bits, label, file: file, line: line)
        XCTAssertEqual(a.units, b.units, label, file: file, line: line)
        XCTAssertEqual(a.graph.name, b.graph.name, label, file: file, line: line)
        XCTAssertEqual(a.graph.inputs, b.graph.inputs, label, file: file, line: line)
        XCTAssertEqual(a.graph.outputs, b.graph.outputs, label, file: file, line: line)
        XCTAssertEqual(a.graph.nodes, b.graph.nodes, label, file: file, line: line)
        XCTAssertEqual(Set(a.layers.keys), Set(b.layers.keys), label, file: file, line: line)
        for (name, layer) in a.layers {
            guard let other = b.layers[name] else { continue }
            XCTAssertEqual(layer, other, "\(label): layer \(name)", file: file, line: line)
            XCTAssertEqual(layer.weight.scales.map(\.bitPattern), other.weight.scales.map(\.bitPattern), file: file, line: line)
            XCTAssertEqual(layer.weight.zeroPoints.map(\.bitPattern), other.weight.zeroPoints.map(\.bitPattern), file: file, line: line)
            XCTAssertEqual(layer.bias.map(\.bitPattern), other.bias.map(\.bitPattern), file: file, line: line)
        }
        XCTAssertEqual(Set(a.activations.keys), Set(b.activations.keys), label, file: file, line: line)
        for (tensor, q) in a.activations {
            guard let other = b.activations[tensor] else { continue }
            XCTAssertEqual(q.grid, other.grid, file: file, line: line)
            XCTAssertEqual(q.scales.map(\.bitPattern), other.scales.map(\.bitPattern), "\(label): \(tensor)", file: file, line: line)
            XCTAssertEqual(q.zeroPoints.map(\.bitPattern), other.zeroPoints.map(\.bitPattern), "\(label): \(tensor)", file: file, line: line)
        }
        let owned = a.layerOwnedInitializerNames
        XCTAssertEqual(Set(a.graph.initializers.keys), Set(b.graph.initializers.keys), label, file: file, line: line)
        for (name, tensor) in a.graph.initializers where !owned.contains(name) {
            XCTAssertEqual(tensor, b.graph.initializers[name], "\(label): initializer \(name)", file: file, line: line)
        }
        for node in a.graph.nodes {
            guard let layer = a.layers[node.name] else { continue }
            XCTAssertEqual(b.graph.initializers[node.inputs[1]]?.data, layer.dequantizedWeights, "\(label): \(node.name) weights", file: file, line: line)
            if node.inputs.count > 2 {
                XCTAssertEqual(b.graph.initializers[node.inputs[2]]?.data.map(\.bitPattern), layer.bias.map(\.bitPattern), file: file, line: line)
            }
        }
    }

    func testFloatScalesRoundTripExactly() throws {
        let options = CalibrationOptions(bits: BitWidths(weights: 3, activations: 5), scalePolicy: .float)
        let network = try Self.network(options, method: "rtn")
        XCTAssertNil(network.layers["conv2"]!.weight.exponents, "the rtn network has float scales")
        let data = try RAPQFile.encode(network)
        let loaded = try RAPQFile.decode(data)
        assertEquivalent(network, loaded, "rtn W3A5")
        XCTAssertEqual(try RAPQFile.encode(loaded), data)
    }

    func testCodesArePackedAtTheirBitWidth() throws {
        for (name, options) in Self.settings {
            let network = try Self.network(options)
            let data = try RAPQFile.encode(network)
            let (manifest, manifestLength) = try Self.manifest(of: data)
            var total = manifest.graph.length
            for stored in manifest.layers {
                let layer = network.layers[stored.node]!
                let expected = (layer.codes.count * layer.weight.grid.bits + 7) / 8
                XCTAssertEqual(stored.codes.length, expected, "\(name): \(stored.node)")
                total += expected
            }
            XCTAssertEqual(manifest.layers.map(\.node), manifest.layers.map(\.node).sorted())
            XCTAssertEqual(manifest.payloadBytes, total)
            XCTAssertEqual(data.count, RAPQFile.headerBytes + manifestLength + total)
            XCTAssertEqual(manifest.layers.first { $0.node == "conv2" }?.weight.grid.bits, options.bits.weights)
            XCTAssertNotNil(manifest.activations.first?.quantizer.exponents, "power-of-two scales are stored as exponents")
        }
        // Packing by itself, at every width, with counts that leave partial bytes.
        var r = Random(state: 3)
        for bits in 1...8 {
            for signed in [false, true] {
                let grid = QuantizationGrid(bits: bits, signed: signed)
                let count = 37
                let codes = (0..<count).map { _ in Int32(grid.qmin + Int(r.next() % UInt64(grid.levels + 1))) }
                let packed = try PackedCodes.pack(codes, grid: grid, layer: "t")
                XCTAssertEqual(packed.count, (count * bits + 7) / 8)
                XCTAssertEqual(PackedCodes.unpack(packed, count: count, grid: grid), codes, "\(bits) bits, signed \(signed)")
            }
        }
        XCTAssertEqual(CRC32.checksum(Data("123456789".utf8)), 0xCBF4_3926, "the standard CRC-32 check value")
        // Bit order: the first code sits in the lowest bits of the first byte.
        XCTAssertEqual(try PackedCodes.pack([1, 2, 3, 0, 3], grid: QuantizationGrid(bits: 2, signed: false), layer: "t"), Data([0b0011_1001, 0b11]))
    }

    static func manifest(of data: Data) throws -> (RAPQManifest, Int) {
        let length = Int(UInt64(littleEndianBytes: [UInt8](data)[12..<20]))
        let json = data.subdata(in: RAPQFile.headerBytes..<RAPQFile.headerBytes + length)
        return (try JSONDecoder().decode(RAPQManifest.self, from: json), length)
    }

    /// A file with `manifest` replaced (its checksum recomputed), to test the consistency checks.
    static func replacingManifest(of data: Data, with manifest: RAPQManifest) throws -> Data {
        let (_, length) = try Self.manifest(of: data)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = try encoder.encode(manifest)
        var out = Data(RAPQFile.magic)
        withUnsafeBytes(of: RAPQFile.version.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: CRC32.checksum(json).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(data.subdata(in: RAPQFile.headerBytes + length..<data.count))
        return out
    }

    func testDamagedFilesThrowModelFileError() throws {
        let network = try Self.network(Self.settings[0].options)
        let data = try RAPQFile.encode(network)
        let (manifest, manifestLength) = try Self.manifest(of: data)
        func expect(_ bytes: Data, _ label: String, _ matches: (ModelFileError) -> Bool) {
            XCTAssertThrowsError(try RAPQFile.decode(bytes), label) { error in
                guard let e = error as? ModelFileError else { return XCTFail("\(label): \(error) is not a ModelFileError") }
                XCTAssertTrue(matches(e), "\(label): got \(e)")
                XCTAssertFalse(e.description.isEmpty)
            }
        }
        expect(Data(), "empty") { if case .notARAPQFile = $0 { return true }; return false }
        expect(Data("{\"method\":\"rapq\"}".utf8), "JSON, no magic") { if case .notARAPQFile = $0 { return true }; return false }
        expect(try ONNXExporter.serialize(Self.makeGraph()), "an ONNX file") { if case .notARAPQFile = $0 { return true }; return false }
        var version = data
        version[8] = 2
        expect(version, "version 2") { $0 == .unsupportedVersion(found: 2, supported: 1...1) }
        for cut in [3, 10, 20, RAPQFile.headerBytes + manifestLength / 2, RAPQFile.headerBytes + manifestLength + 5, data.count - 1] {
            expect(data.prefix(cut), "cut at \(cut)") { if case .truncated = $0 { return true }; return false }
        }
        var manifestByte = data
        manifestByte[RAPQFile.headerBytes + manifestLength / 2] ^= 0x01
        expect(manifestByte, "flipped manifest bit") { if case .corruptedManifest = $0 { return true }; return false }
        for offset in [manifest.graph.length / 2, manifest.layers[1].codes.offset] {
            var payloadByte = data
            payloadByte[RAPQFile.headerBytes + manifestLength + offset] ^= 0x10
            expect(payloadByte, "flipped payload bit at \(offset)") { if case .corruptedPayload = $0 { return true }; return false }
        }
        expect(data + Data([0]), "trailing byte") { if case .corruptedPayload = $0 { return true }; return false }
        // Manifests that parse and pass their checksum but contradict the payload.
        var wrongShape = manifest
        wrongShape.layers[0].weightShape[0] += 1
        expect(try Self.replacingManifest(of: data, with: wrongShape), "shape") { if case .corruptedManifest = $0 { return true }; return false }
        var outside = manifest
        outside.layers[0].codes.offset = manifest.payloadBytes
        expect(try Self.replacingManifest(of: data, with: outside), "codes outside") { if case .corruptedManifest = $0 { return true }; return false }
        var noScales = manifest
        noScales.activations[0].quantizer.exponents = nil
        expect(try Self.replacingManifest(of: data, with: noScales), "no scales") { if case .corruptedManifest = $0 { return true }; return false }
        var unknownLayer = manifest
        unknownLayer.layers[0].node = "nowhere"
        expect(try Self.replacingManifest(of: data, with: unknownLayer), "layer without node") { if case .corruptedManifest = $0 { return true }; return false }
        // Edited to run (partly) in float while claiming to be quantized: no activation quantizers, or a layer
        // dropped from the manifest (its weights are then missing from the graph).
        var noActivations = manifest
        noActivations.activations = []
        expect(try Self.replacingManifest(of: data, with: noActivations), "no activation quantizers") {
            if case .corruptedManifest(let reason) = $0 { return reason.contains("has no activation quantizer") }; return false
        }
        var droppedLayer = manifest
        droppedLayer.layers.removeLast()
        expect(try Self.replacingManifest(of: data, with: droppedLayer), "a layer dropped") {
            if case .corruptedPayload(let reason) = $0 { return reason.contains("project.w") }; return false
        }
        XCTAssertNoThrow(try RAPQFile.decode(try Self.replacingManifest(of: data, with: manifest)), "the rewriting helper itself is faithful")

        // A network whose codes leave their grid cannot be written.
        var bad = network
        bad.layers["conv2"]!.codes[5] = Int32(bad.layers["conv2"]!.weight.grid.qmax + 1)
        XCTAssertThrowsError(try RAPQFile.encode(bad)) { error in
            guard case .codeOutOfRange(let layer, let index, _, _)? = error as? ModelFileError else { return XCTFail("\(error)") }
            XCTAssertEqual(layer, "conv2")
            XCTAssertEqual(index, 5)
        }
        XCTAssertThrowsError(try RAPQFile.read(contentsOf: URL(fileURLWithPath: "/nonexistent/model.rapq"))) { error in
            guard case .unreadable? = error as? ModelFileError else { return XCTFail("\(error)") }
        }
    }

    /// Files that pass their checksums but hold values the engines would compute wrongly are refused by the
    /// reader, and the same values in an in-memory network fail `verify`'s static checks.
    func testUncomputableValuesAreRefusedAndFailVerification() throws {
        let network = try Self.network(Self.settings[0].options)
        let data = try RAPQFile.encode(network)
        let (manifest, _) = try Self.manifest(of: data)
        func refused(_ edit: (inout RAPQManifest) -> Void, _ phrase: String, file: StaticString = #filePath, line: UInt = #line) throws {
            var edited = manifest
            edit(&edited)
            XCTAssertThrowsError(try RAPQFile.decode(try Self.replacingManifest(of: data, with: edited)), file: file, line: line) { error in
                XCTAssertTrue("\(error)".contains(phrase), "expected '\(phrase)' in \(error)", file: file, line: line)
            }
        }
        try refused({ $0.layers[1].biasBits[0] = Float.nan.bitPattern }, "has bias nan")
        try refused({ $0.layers[1].weight.exponents![0] = 127 }, "scales must be positive, between 2^-64 and 2^64")
        try refused({ $0.activations[0].quantizer.exponents![0] = -126 }, "between 2^-64")
        try refused({ $0.layers[1].weight.zeroPoints![0] = 99 }, "outside its grid")
        try refused({ $0.bits.weights = 1 }, "declares 1-bit weights")
        try refused({ $0.activations[1].quantizer.grid.bits = 6 }, "6-bit grid")
        let shape = manifest.layers[1].weightShape
        try refused({ $0.layers[1].weightShape = [shape[0], shape.dropFirst().reduce(1, *), 1, 1] }, "graph")

        func failing(_ edit: (inout QuantizedNetwork) -> Void) -> [String] {
            var edited = network
            edit(&edited)
            return staticChecks(of: edited).filter { !$0.passed }.map(\.name)
        }
        XCTAssertEqual(failing { _ in }, [])
        let layer = network.layers.keys.sorted()[1]
        XCTAssertEqual(failing { $0.layers[layer]!.bias[0] = .nan }, ["scales are positive and finite, zero points and biases finite"])
        XCTAssertEqual(failing { $0.bits.weights = 1 }, ["grids have the declared bit widths (W1A4, first/last 8)"])
        XCTAssertTrue(failing { $0.layers[layer]!.weightShape = [$0.layers[layer]!.weightShape[0], 1, 1, $0.layers[layer]!.codes.count / $0.layers[layer]!.weightShape[0]] }
            .contains("weight shapes match their layers' kernels and the graph"))
    }

    // MARK: - QDQ export

    func testQDQStructure() throws {
        for (name, options) in Self.settings {
            let network = try Self.network(options)
            let model = try QDQExporter.modelProto(for: network)
            XCTAssertGreaterThanOrEqual(model.opsetImport.first { $0.domain.isEmpty }?.version ?? 0, 13)
            let graph = model.graph
            let initializers = Dictionary(uniqueKeysWithValues: graph.initializer.map { ($0.name, $0) })
            let producer = Dictionary(graph.node.flatMap { n in n.output.map { ($0, n) } }, uniquingKeysWith: { a, _ in a })
            func axis(_ n: Onnx_NodeProto) -> Int64? { n.attribute.first { $0.name == "axis" }?.i }
            func floats(_ name: String) -> [Float] {
                let raw = [UInt8](initializers[name]!.rawData)
                return stride(from: 0, to: raw.count, by: 4).map { Float(bitPattern: UInt32(littleEndianBytes: raw[$0..<$0 + 4])) }
            }
            func dataType(_ name: String) -> Onnx_TensorProto.DataType? { initializers[name].flatMap { .init(rawValue: Int($0.dataType)) } }

            var layersSeen = 0
            for node in graph.node where node.opType == "Conv" || node.opType == "Gemm" {
                let layer = try XCTUnwrap(network.layers[node.name], "\(name): \(node.name) is a quantized layer")
                layersSeen += 1
                // Weight: int8 codes minus zero points, zero point 0, per-channel scales, axis 0.
                let wdq = try XCTUnwrap(producer[node.input[1]])
                XCTAssertEqual(wdq.opType, "DequantizeLinear")
                XCTAssertEqual(axis(wdq), 0)
                XCTAssertEqual(dataType(wdq.input[0]), .int8)
                XCTAssertEqual(initializers[wdq.input[0]]!.dims, layer.weightShape.map(Int64.init))
                let stored = [UInt8](initializers[wdq.input[0]]!.rawData).map { Int(Int8(bitPattern: $0)) }
                let per = layer.codes.count / layer.channels
                XCTAssertEqual(stored, layer.codes.enumerated().map { Int($1) - Int(layer.weight.zeroPoints[$0 / per]) })
                XCTAssertEqual(floats(wdq.input[1]).map(\.bitPattern), layer.weight.scales.map(\.bitPattern))
                XCTAssertEqual(dataType(wdq.input[2]), .int8)
                XCTAssertTrue(initializers[wdq.input[2]]!.rawData.allSatisfy { $0 == 0 })
                // Input through a DequantizeLinear; bias scale == input scale x weight scale, bit for bit.
                let xdq = try XCTUnwrap(producer[node.input[0]], "\(name): \(node.name) input")
                XCTAssertEqual(xdq.opType, "DequantizeLinear", "\(name): \(node.name) reads a DequantizeLinear")
                let sx = floats(xdq.input[1])[0]
                XCTAssertEqual(sx.bitPattern, network.activationQuantizer(for: layer.input)!.scales[0].bitPattern)
                let bdq = try XCTUnwrap(producer[node.input[2]])
                XCTAssertEqual(bdq.opType, "DequantizeLinear")
                XCTAssertEqual(axis(bdq), 0)
                XCTAssertEqual(dataType(bdq.input[0]), .int32)
                XCTAssertEqual(floats(bdq.input[1]).map(\.bitPattern), layer.weight.scales.map { (sx * $0).bitPattern })
                XCTAssertEqual(floats(bdq.input[1]), zip(layer.weight.scales, floats(bdq.input[1])).map { sw, _ in PowerOfTwo.value(PowerOfTwo.exactExponent(sx)! + PowerOfTwo.exactExponent(sw)!) })
                let bias = [UInt8](initializers[bdq.input[0]]!.rawData)
                XCTAssertEqual(stride(from: 0, to: bias.count, by: 4).map { Int32(bitPattern: UInt32(littleEndianBytes: bias[$0..<$0 + 4])) },
                               layer.integerBias(inputScale: sx))
            }
            XCTAssertEqual(layersSeen, network.layers.count)

            // Every activation site has its Q/DQ pair with the site's scale and zero point.
            for (tensor, q) in network.activations {
                let isInput = network.graph.inputs.contains { $0.name == tensor }
                let dq: Onnx_NodeProto
                if isInput {
                    dq = try XCTUnwrap(graph.node.first { n in n.opType == "DequantizeLinear" && producer[n.input[0]].map { chainStart($0, producer) == tensor } == true })
                } else {
                    dq = try XCTUnwrap(producer[tensor], "\(name): site \(tensor)")
                }
                XCTAssertEqual(dq.opType, "DequantizeLinear", "\(name): site \(tensor)")
                XCTAssertEqual(floats(dq.input[1])[0].bitPattern, q.scales[0].bitPattern)
                XCTAssertEqual(Int(initializers[dq.input[2]]!.rawData[0]), Int(q.zeroPoints[0]))
                XCTAssertEqual(dataType(dq.input[2]), .uint8)
                // Narrow sites clamp their codes to the low-bit grid between Q and DQ.
                let before = producer[dq.input[0]]!
                if q.grid.bits < 8 {
                    XCTAssertEqual(before.opType, "Clip", "\(name): \(tensor) (\(q.grid.bits) bits) has its code clamp")
                    XCTAssertLessThanOrEqual(Int(initializers[before.input[2]]!.rawData[0]), q.grid.qmax)
                } else {
                    XCTAssertEqual(before.opType, "QuantizeLinear")
                }
            }
            // The folded ReLU6 becomes the code clamp [0, min(qmax, round(6 / s))] of the depthwise output.
            let d6 = network.activations["d6"]!
            let clamp = producer[producer["d6"]!.input[0]]!
            XCTAssertEqual(Int(initializers[clamp.input[2]]!.rawData[0]), min(d6.grid.qmax, Int((6 / d6.scales[0]).rounded(.toNearestOrEven))))
            XCTAssertFalse(graph.node.contains { $0.opType == "Relu" || ($0.opType == "Clip" && $0.input[0] == "d") },
                           "activations before a site are folded into its clamp")
            // The project's own importer reads float graphs only: it must refuse QuantizeLinear, not misread it.
            XCTAssertThrowsError(try ONNXImporter.graph(from: model, externalDataDirectory: nil))
        }
    }

    /// The first tensor of a Q -> [Clip] chain.
    func chainStart(_ node: Onnx_NodeProto, _ producer: [String: Onnx_NodeProto]) -> String {
        var n = node
        while n.opType == "Clip", let p = producer[n.input[0]] { n = p }
        return n.opType == "QuantizeLinear" ? n.input[0] : ""
    }

    func testQDQRejectsWeightsOutsideInt8() throws {
        var network = try Self.network(Self.settings[0].options)
        var layer = network.layers["conv2"]!
        layer.weight = QuantizerParameters(grid: QuantizationGrid(bits: 8, signed: false), scales: layer.weight.scales,
                                           zeroPoints: [Float](repeating: 0, count: layer.channels))
        layer.codes[0] = 200
        network.layers["conv2"] = layer
        XCTAssertThrowsError(try QDQExporter.modelProto(for: network)) { error in
            guard case .weightsExceedInt8(let name, _, let highest)? = error as? QDQExportError else { return XCTFail("\(error)") }
            XCTAssertEqual(name, "conv2")
            XCTAssertEqual(highest, 200)
        }
    }

    // MARK: - onnxruntime

    /// A Python with onnx, onnxruntime and numpy.
    static func pythonWithOnnxRuntime() -> (URL?, String) { ReferencePython.find(importing: "onnx, onnxruntime, numpy") }

    @discardableResult
    static func run(_ executable: URL, _ arguments: [String]) -> (Int32, String) {
        let result = ReferencePython.run(executable, arguments)
        return (result.status, result.output)
    }

    func testOnnxRuntimeRunsIntegerKernelsAndMatchesSimulation() throws {
        let (found, missing) = Self.pythonWithOnnxRuntime()
        guard let python = found else { throw XCTSkip(missing) }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let script = root.appendingPathComponent("tools/check_qdq_onnxruntime.py")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rapq-qdq-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let x = Self.samples(16, seed: 1234)
        let inputURL = folder.appendingPathComponent("input.npy")
        try NumpyFile.write(x, to: inputURL)
        // Power-of-two scales make every requantization exact, so onnxruntime's integer kernels must give the
        // simulation's logits to float rounding. Float scales (rtn) still fuse, but a requantization can round a
        // code the other way: the logits then agree only to a few activation steps.
        let cases: [(name: String, network: QuantizedNetwork, tolerance: Float)] = [
            (Self.settings[0].name, try Self.network(Self.settings[0].options), 1e-3),
            (Self.settings[3].name, try Self.network(Self.settings[3].options), 1e-3),
            (Self.settings[0].name + ", activation ranges aligned", try Self.alignedNetwork(Self.settings[0].options), 1e-3),
            ("rtn W4A4", try Self.network(CalibrationOptions(bits: BitWidths(weights: 4, activations: 4), scalePolicy: .float), method: "rtn"), 5e-2),
        ]
        for (name, network, tolerance) in cases {
            let modelURL = folder.appendingPathComponent("model.qdq.onnx"), logitsURL = folder.appendingPathComponent("ort.npy")
            let simulationURL = folder.appendingPathComponent("simulation.npy")
            try QDQExporter.write(network, to: modelURL)
            let simulated = try Simulation(network).predict(x)
            try NumpyFile.write(simulated, to: simulationURL)
            let (status, output) = Self.run(python, [script.path, modelURL.path, inputURL.path, "--compare", simulationURL.path,
                                                     "--save-logits", logitsURL.path])
            XCTAssertEqual(status, 0, "\(name): \(output)")
            let summaryLine = try XCTUnwrap(output.split(separator: "\n").last, output)
            let summary = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(summaryLine.utf8)) as? [String: Any], output)
            // conv1, conv2, dw and project are fused; conv3 feeds the residual Add, whose float output the
            // network does not quantize on its own, so it stays a float conv by design.
            XCTAssertEqual(summary["qlinearconv"] as? Int, 4, "\(name): \(output)")
            XCTAssertEqual(summary["unfused"] as? [String], [], "\(name): \(output)")
            XCTAssertEqual(summary["unfused_by_design"] as? [String], ["conv3"], "\(name): \(output)")
            XCTAssertEqual(summary["qgemm"] as? Int, 1, "\(name): \(output)")
            let ort = try NumpyFile.readTensor(contentsOf: logitsURL)
            XCTAssertEqual(ort.shape, simulated.shape)
            let scale = simulated.data.map(abs).max()!
            let worst = zip(ort.data, simulated.data).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(worst, tolerance * scale, "\(name): onnxruntime's logits differ from the simulation by \(worst)")
            if tolerance <= 1e-3 { XCTAssertEqual(summary["agreement"] as? Int, 16, "\(name): \(output)") }
            print("\(name): \(summaryLine)")
        }
    }

    // MARK: - Residual Adds that onnxruntime runs as QLinearAdd

    /// An inverted residual block whose Add has no ReLU after it (MobileNetV2, EfficientNet-Lite): its output
    /// has a zero point inside the grid, and with `residualInputs` both Add inputs are quantized.
    static func makeInvertedResidualGraph() -> Graph {
        var r = Random(state: 2024)
        let same3 = Conv2DParameters(window: WindowGeometry(kernel: (3, 3), pads: (1, 1, 1, 1)))
        let dw = Conv2DParameters(window: WindowGeometry(kernel: (3, 3), pads: (1, 1, 1, 1)), groups: 16)
        let pointwise = Conv2DParameters(window: WindowGeometry(kernel: (1, 1)))
        let nodes = [
            Node(name: "stem", op: .conv(same3), inputs: ["input", "stem.w", "stem.b"], outputs: ["c0"]),
            Node(name: "stem.relu6", op: .clip(min: 0, max: 6), inputs: ["c0"], outputs: ["r0"]),
            Node(name: "expand", op: .conv(pointwise), inputs: ["r0", "expand.w", "expand.b"], outputs: ["e"]),
            Node(name: "expand.relu6", op: .clip(min: 0, max: 6), inputs: ["e"], outputs: ["e6"]),
            Node(name: "dw", op: .conv(dw), inputs: ["e6", "dw.w", "dw.b"], outputs: ["d"]),
            Node(name: "dw.relu6", op: .clip(min: 0, max: 6), inputs: ["d"], outputs: ["d6"]),
            Node(name: "project", op: .conv(pointwise), inputs: ["d6", "project.w", "project.b"], outputs: ["p"]),
            Node(name: "add", op: .add, inputs: ["p", "r0"], outputs: ["s"]),
            Node(name: "head", op: .conv(pointwise), inputs: ["s", "head.w", "head.b"], outputs: ["h"]),
            Node(name: "head.relu6", op: .clip(min: 0, max: 6), inputs: ["h"], outputs: ["h6"]),
            Node(name: "gap", op: .globalAveragePool, inputs: ["h6"], outputs: ["g"]),
            Node(name: "flatten", op: .flatten(axis: 1), inputs: ["g"], outputs: ["f"]),
            Node(name: "fc", op: .gemm(alpha: 1, beta: 1, transA: false, transB: true), inputs: ["f", "fc.w", "fc.b"], outputs: ["logits"]),
        ]
        let initializers: [String: Tensor] = [
            "stem.w": r.tensor([8, 3, 3, 3], scale: 0.5), "stem.b": r.tensor([8], scale: 0.5),
            "expand.w": r.tensor([16, 8, 1, 1], scale: 0.5), "expand.b": r.tensor([16], scale: 0.2),
            "dw.w": r.tensor([16, 1, 3, 3], scale: 0.6), "dw.b": r.tensor([16], scale: 0.2),
            "project.w": r.tensor([8, 16, 1, 1], scale: 0.4), "project.b": r.tensor([8], scale: 0.2),
            "head.w": r.tensor([16, 8, 1, 1], scale: 0.5), "head.b": r.tensor([16], scale: 0.2),
            "fc.w": r.tensor([10, 16], scale: 0.5), "fc.b": r.tensor([10], scale: 0.1),
        ]
        return Graph(name: "inverted-residual", inputs: [ValueInfo(name: "input", dimensions: [nil, 3, 8, 8])],
                     outputs: [ValueInfo(name: "logits", dimensions: [nil, 10])], nodes: nodes, initializers: initializers)
    }

    static func invertedResidualNetwork(bits: Int, residualInputs: Int) throws -> QuantizedNetwork {
        var widths = BitWidths(weights: bits, activations: bits)
        widths.residualInputs = residualInputs
        return try calibrate(PreparedNetwork(makeInvertedResidualGraph()), calibration: samples(32, seed: 11),
                             options: CalibrationOptions(bits: widths, scalePolicy: .bestPowerOfTwo), method: "pot-mse")
    }

    /// The output of an Add whose inputs are both quantized gets an even zero point; without quantized Add
    /// inputs (METHOD §2's placement) it keeps the zero point the range search gives.
    func testQuantizedAddOutputHasAnEvenZeroPoint() throws {
        let graph = Self.makeInvertedResidualGraph()
        let prepared = PreparedNetwork(graph)
        for residualInputs in [0, 8] {
            var widths = BitWidths(weights: 4, activations: 4)
            widths.residualInputs = residualInputs
            let sites = placeActivationQuantizers(in: prepared.graph, units: prepared.units, bits: widths)
            XCTAssertEqual(sites.filter(\.evenZeroPoint).map(\.tensor), residualInputs > 0 ? ["s"] : [], "residual inputs \(residualInputs)")
        }
        for bits in [4, 8] {
            let network = try Self.invertedResidualNetwork(bits: bits, residualInputs: 8)
            let z = try XCTUnwrap(network.activations["s"]?.zeroPoints.first)
            XCTAssertNotEqual(z, 0, "W\(bits)A\(bits): the Add output is signed, so the test covers a zero point inside the grid")
            XCTAssertEqual(z.truncatingRemainder(dividingBy: 2), 0, "W\(bits)A\(bits): zero point \(z)")
        }
        let grid = QuantizationGrid(bits: 4, signed: false)
        XCTAssertEqual(ScaleSearch.rescaledZeroPoint(5, from: 1, to: 1, grid: grid, even: true), 4)
        XCTAssertEqual(ScaleSearch.rescaledZeroPoint(7, from: 1, to: 0.5, grid: grid, even: true), 14)
        XCTAssertEqual(ScaleSearch.rescaledZeroPoint(15, from: 1, to: 1, grid: grid, even: true), 14, "qmax is odd")
    }

    /// onnxruntime runs the block's Add as QLinearAdd, which rounds after adding the output zero point
    /// (`quantizedAddOutputs`): with the even zero point its codes, and so its logits, are the integer
    /// engine's exactly, at W4A4 and W8A8.
    func testOnnxRuntimeQLinearAddMatchesIntegerEngineExactly() throws {
        let (found, missing) = Self.pythonWithOnnxRuntime()
        guard let python = found else { throw XCTSkip(missing) }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let script = root.appendingPathComponent("tools/check_qdq_onnxruntime.py")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rapq-qladd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let x = Self.samples(64, seed: 4321)
        let inputURL = folder.appendingPathComponent("input.npy")
        try NumpyFile.write(x, to: inputURL)
        for bits in [4, 8] {
            let network = try Self.invertedResidualNetwork(bits: bits, residualInputs: 8)
            let modelURL = folder.appendingPathComponent("model.qdq.onnx"), logitsURL = folder.appendingPathComponent("ort.npy")
            let integerURL = folder.appendingPathComponent("integer.npy")
            try QDQExporter.write(network, to: modelURL)
            let integer = try IntegerEngine(network).predict(x)
            try NumpyFile.write(integer, to: integerURL)
            let (status, output) = Self.run(python, [script.path, modelURL.path, inputURL.path, "--compare", integerURL.path,
                                                     "--save-logits", logitsURL.path, "--strict"])
            XCTAssertEqual(status, 0, "W\(bits)A\(bits): \(output)")
            let summaryLine = try XCTUnwrap(output.split(separator: "\n").last, output)
            let summary = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(summaryLine.utf8)) as? [String: Any], output)
            let ops = try XCTUnwrap(summary["ops"] as? [String: Int], output)
            XCTAssertEqual(ops["QLinearConv"], 5, "W\(bits)A\(bits): \(output)")
            XCTAssertEqual(ops["QLinearAdd"], 1, "W\(bits)A\(bits): \(output)")
            let ort = try NumpyFile.readTensor(contentsOf: logitsURL)
            XCTAssertEqual(ort.shape, integer.shape)
            let differing = zip(ort.data, integer.data).filter { $0 != $1 }.count
            XCTAssertEqual(differing, 0, "W\(bits)A\(bits): onnxruntime's logits differ from the integer engine's in \(differing) of \(ort.count) values")
            print("W\(bits)A\(bits): \(summaryLine)")
        }
    }
}
