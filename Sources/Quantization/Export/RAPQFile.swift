import DataIO
import Foundation
import Graph
import ONNX
import TensorKernels

/// Saves and loads a `QuantizedNetwork` losslessly in the `.rapq` format (see this folder's README.md):
///
/// ```
/// magic (8) | version u32 | manifest length u64 | manifest CRC-32 u32 | JSON manifest | payload
/// payload = ONNX graph without the quantized layers' weights | each layer's codes packed at b bits
/// ```
///
/// Encoding is deterministic (sorted JSON keys, layers and activations in name order), so the same network
/// always gives the same bytes, and `encode(decode(encode(n))) == encode(n)`.
public enum RAPQFile {
    /// The first 8 bytes of every `.rapq` file: `\x89 R A P Q \r \n \x1a` (a non-ASCII first byte and a
    /// CR-LF pair reveal text-mode transfers, as in PNG).
    public static let magic: [UInt8] = [0x89, 0x52, 0x41, 0x50, 0x51, 0x0D, 0x0A, 0x1A]
    /// The format version this build writes.
    public static let version: UInt32 = 1
    /// The format versions this build reads.
    public static let readableVersions: ClosedRange<UInt32> = 1...1
    /// Bytes before the manifest: magic, version, manifest length, manifest CRC-32.
    static let headerBytes = 8 + 4 + 8 + 4

    /// Writes `network` to `url` atomically (temporary file in the same folder, then renamed), once its
    /// bytes have been checked to read back.
    public static func write(_ network: QuantizedNetwork, to url: URL) throws {
        let data = try encode(network)
        // A file that `read` would refuse is never written: the bytes are decoded once before they go to disk.
        do { _ = try decode(data) } catch {
            throw ModelFileError.unrepresentable(reason: "the encoded network does not read back (\(error)); this is a defect of "
                + "RAPQ, please report it with the model")
        }
        try AtomicFile.write(data, to: url)
    }

    /// Reads the network saved at `url`.
    public static func read(contentsOf url: URL) throws -> QuantizedNetwork {
        let data: Data
        do { data = try RegularFile.contents(of: url) } catch let DataError.notARegularFile(_, kind) {
            throw ModelFileError.unreadable(path: url.path, reason: "it is \(kind), not a .rapq file")
        } catch let DataError.unreadable(_, reason) {
            throw ModelFileError.unreadable(path: url.path, reason: reason)
        }
        return try decode(data)
    }

    // MARK: - Encoding

    /// The file's bytes for `network`.
    public static func encode(_ network: QuantizedNetwork) throws -> Data {
        let owned = try layerOwnedInitializers(of: network)
        // Never write what `decode` refuses (e.g. scales beyond `exponentRange` from data near 1e-38).
        do { try checkQuantizers(network) } catch ModelFileError.corruptedManifest(let reason) {
            throw ModelFileError.unrepresentable(reason: reason)
        }
        var structure = network.graph
        structure.initializers = structure.initializers.filter { !owned.contains($0.key) }
        let graphBytes: Data
        do { graphBytes = try ONNXExporter.serialize(structure) } catch {
            throw ModelFileError.unrepresentable(reason: "the graph cannot be serialized: \(error)")
        }
        var payload = graphBytes
        var layers: [StoredLayer] = []
        for name in network.layers.keys.sorted() {
            let layer = network.layers[name]!
            let packed = try PackedCodes.pack(layer.codes, grid: layer.weight.grid, layer: name)
            layers.append(StoredLayer(
                node: layer.node, input: layer.input, weightShape: layer.weightShape, weight: StoredQuantizer(layer.weight),
                biasBits: layer.bias.map(\.bitPattern), codes: ByteRange(offset: payload.count, length: packed.count)))
            payload.append(packed)
        }
        let manifest = RAPQManifest(
            method: network.method, bits: network.bits, units: network.units,
            activations: network.activations.keys.sorted().map { StoredActivation(tensor: $0, quantizer: StoredQuantizer(network.activations[$0]!)) },
            layers: layers, graph: ByteRange(offset: 0, length: graphBytes.count),
            payloadBytes: payload.count, payloadCRC32: CRC32.checksum(payload))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json = try encoder.encode(manifest)

        var data = Data(magic)
        append(version, to: &data)
        append(UInt64(json.count), to: &data)
        append(CRC32.checksum(json), to: &data)
        data.append(json)
        data.append(payload)
        return data
    }

    /// Initializers that only quantized layers read, as weight or bias (the codes replace them in the file),
    /// after checking that every layer has its node and consistent sizes.
    static func layerOwnedInitializers(of network: QuantizedNetwork) throws -> Set<String> {
        let graph = network.graph
        let nodes = Dictionary(graph.nodes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for (name, layer) in network.layers.sorted(by: { $0.key < $1.key }) {
            guard let node = nodes[name], node.inputs.count >= 2 else {
                throw ModelFileError.unrepresentable(reason: "layer '\(name)' has no node with a weight input in the graph")
            }
            let count = layer.weightShape.shapeProduct
            guard !layer.weightShape.isEmpty, layer.codes.count == count, layer.weight.scales.count == layer.channels,
                  layer.bias.count == layer.channels else {
                throw ModelFileError.unrepresentable(
                    reason: "layer '\(name)' is inconsistent: shape \(layer.weightShape), \(layer.codes.count) codes, \(layer.weight.scales.count) scales, \(layer.bias.count) biases")
            }
        }
        return network.layerOwnedInitializerNames
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to data: inout Data) {
        withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
    }

    // MARK: - Decoding

    /// The network stored in `data`.
    public static func decode(_ data: Data) throws -> QuantizedNetwork {
        let bytes = [UInt8](data)
        guard bytes.count >= magic.count else {
            if Array(magic.prefix(bytes.count)) == bytes, !bytes.isEmpty {
                throw ModelFileError.truncated(part: "header", expectedBytes: headerBytes, availableBytes: bytes.count)
            }
            throw ModelFileError.notARAPQFile(found: bytes)
        }
        guard Array(bytes[0..<8]) == magic else { throw ModelFileError.notARAPQFile(found: Array(bytes[0..<8])) }
        guard bytes.count >= 12 else { throw ModelFileError.truncated(part: "header", expectedBytes: headerBytes, availableBytes: bytes.count) }
        let fileVersion = UInt32(littleEndianBytes: bytes[8..<12])
        guard readableVersions.contains(fileVersion) else {
            throw ModelFileError.unsupportedVersion(found: fileVersion, supported: readableVersions)
        }
        guard bytes.count >= headerBytes else { throw ModelFileError.truncated(part: "header", expectedBytes: headerBytes, availableBytes: bytes.count) }
        let manifestLength = UInt64(littleEndianBytes: bytes[12..<20])
        let manifestCRC = UInt32(littleEndianBytes: bytes[20..<24])
        let available = bytes.count - headerBytes
        guard manifestLength <= UInt64(available) else {
            throw ModelFileError.truncated(part: "manifest", expectedBytes: Int(clamping: manifestLength), availableBytes: available)
        }
        let json = data.subdata(in: data.startIndex + headerBytes..<data.startIndex + headerBytes + Int(manifestLength))
        guard CRC32.checksum(json) == manifestCRC else { throw ModelFileError.corruptedManifest(reason: "its CRC-32 does not match") }
        let manifest: RAPQManifest
        do { manifest = try JSONDecoder().decode(RAPQManifest.self, from: json) } catch {
            throw ModelFileError.corruptedManifest(reason: "it is not valid JSON of the expected form (\(error))")
        }
        let payloadStart = headerBytes + Int(manifestLength)
        let remaining = bytes.count - payloadStart
        guard manifest.payloadBytes >= 0 else { throw ModelFileError.corruptedManifest(reason: "negative payload size") }
        guard manifest.payloadBytes <= remaining else {
            throw ModelFileError.truncated(part: "payload", expectedBytes: manifest.payloadBytes, availableBytes: remaining)
        }
        guard manifest.payloadBytes == remaining else {
            throw ModelFileError.corruptedPayload(reason: "\(remaining - manifest.payloadBytes) unexpected bytes follow the payload")
        }
        let payload = data.subdata(in: data.startIndex + payloadStart..<data.startIndex + bytes.count)
        guard CRC32.checksum(payload) == manifest.payloadCRC32 else { throw ModelFileError.corruptedPayload(reason: "its CRC-32 does not match") }

        func slice(_ range: ByteRange, _ what: String) throws -> Data {
            guard range.offset >= 0, range.length >= 0, range.offset <= payload.count - range.length else {
                throw ModelFileError.corruptedManifest(reason: "\(what) lies outside the \(payload.count)-byte payload")
            }
            return payload.subdata(in: payload.startIndex + range.offset..<payload.startIndex + range.offset + range.length)
        }

        var layers: [String: QuantizedLayer] = [:]
        for stored in manifest.layers {
            let owner = "layer '\(stored.node)'"
            guard layers[stored.node] == nil else { throw ModelFileError.corruptedManifest(reason: "\(owner) is listed twice") }
            guard !stored.weightShape.isEmpty, stored.weightShape.allSatisfy({ $0 > 0 && $0 <= 1 << 31 }),
                  stored.weightShape.reduce(1, { $0.multipliedReportingOverflow(by: $1).partialValue }) <= 1 << 31 else {
                throw ModelFileError.corruptedManifest(reason: "\(owner) has weight shape \(stored.weightShape)")
            }
            let channels = stored.weightShape[0], count = stored.weightShape.shapeProduct
            let weight = try stored.weight.parameters(count: channels, owner: owner)
            guard stored.biasBits.count == channels else {
                throw ModelFileError.corruptedManifest(reason: "\(owner) has \(stored.biasBits.count) biases for \(channels) channels")
            }
            let packed = try slice(stored.codes, "\(owner)'s codes")
            let expected = PackedCodes.byteCount(count: count, bits: weight.grid.bits)
            guard packed.count == expected else {
                throw ModelFileError.corruptedManifest(reason: "\(owner) stores \(packed.count) bytes of codes, \(count) codes of \(weight.grid.bits) bits need \(expected)")
            }
            let codes = PackedCodes.unpack(packed, count: count, grid: weight.grid)
            layers[stored.node] = QuantizedLayer(node: stored.node, weightShape: stored.weightShape, weight: weight, codes: codes,
                                                 bias: stored.biasBits.map(Float.init(bitPattern:)), input: stored.input)
        }
        var activations: [String: QuantizerParameters] = [:]
        for stored in manifest.activations {
            guard activations[stored.tensor] == nil else { throw ModelFileError.corruptedManifest(reason: "activation '\(stored.tensor)' is listed twice") }
            activations[stored.tensor] = try stored.quantizer.parameters(count: 1, owner: "activation '\(stored.tensor)'")
        }
        // The quantizers first: the graph is rebuilt from their dequantized weights.
        var parts = QuantizedNetwork(graph: Graph(name: "", inputs: [], outputs: [], nodes: [], initializers: [:]), units: manifest.units, layers: layers, activations: activations,
                                     method: manifest.method, bits: manifest.bits)
        try checkQuantizers(parts)
        parts.graph = try decodeGraph(try slice(manifest.graph, "the graph"), layers: layers)
        try checkAgainstGraph(parts)
        return parts
    }

    /// The range of scale exponents a file may hold: wide enough for any trained network (dead channels
    /// reach about 2^-40), narrow enough that products of two scales and every requantization shift stay
    /// normal floats and shifts of a 64-bit accumulator.
    public static let exponentRange: ClosedRange<Int> = -64...64

    /// Refuses what the engines would compute wrongly, before the graph is rebuilt: bit widths outside 2-8
    /// or other than declared, scales that are not positive normal floats within `exponentRange`, zero
    /// points outside their grid, biases that are not finite.
    static func checkQuantizers(_ network: QuantizedNetwork) throws {
        func fail(_ reason: String) -> ModelFileError { .corruptedManifest(reason: reason) }
        let bits = network.bits
        for (name, value) in [("weights", bits.weights), ("activations", bits.activations), ("first/last", bits.firstLast)] where !(2...8).contains(value) {
            throw fail("it declares \(value)-bit \(name); rapq writes 2 to 8")
        }
        guard bits.residualInputs == 0 || (2...8).contains(bits.residualInputs) else { throw fail("it declares \(bits.residualInputs)-bit residual inputs") }
        let weightWidths: Set<Int> = [bits.weights, bits.firstLast]
        var activationWidths: Set<Int> = [bits.activations, bits.firstLast]
        if bits.residualInputs > 0 { activationWidths.insert(bits.residualInputs) }
        func check(_ q: QuantizerParameters, _ owner: String, widths: Set<Int>) throws {
            guard widths.contains(q.grid.bits) else {
                throw fail("\(owner) has a \(q.grid.bits)-bit grid, but the file declares \(widths.sorted().map(String.init).joined(separator: " or ")) bits there")
            }
            for (c, s) in q.scales.enumerated() {
                guard s > 0, s.isNormal, exponentRange.contains(Int(s.exponent)) else {
                    throw fail("\(owner) has scale \(s) at channel \(c); scales must be positive, between 2^\(exponentRange.lowerBound) and 2^\(exponentRange.upperBound)")
                }
            }
            for (c, z) in q.zeroPoints.enumerated() {
                guard z.isFinite, z >= Float(q.grid.qmin), z <= Float(q.grid.qmax) else {
                    throw fail("\(owner) has zero point \(z) at channel \(c), outside its grid \(q.grid.qmin)...\(q.grid.qmax)")
                }
            }
        }
        for (name, q) in network.activations.sorted(by: { $0.key < $1.key }) { try check(q, "activation '\(name)'", widths: activationWidths) }
        for (name, layer) in network.layers.sorted(by: { $0.key < $1.key }) {
            try check(layer.weight, "layer '\(name)'", widths: weightWidths)
            if let c = layer.bias.firstIndex(where: { !$0.isFinite }) { throw fail("layer '\(name)' has bias \(layer.bias[c]) at channel \(c)") }
        }
    }

    /// The checks of `checkQuantizers` that need the graph: every layer's input quantized and every
    /// Conv/Gemm/MatMul with a constant weight a quantized layer (the simulation would otherwise run it in
    /// float and report float accuracy as the quantized model's), biases within int32 at input scale x
    /// weight scale, and every shape (the weights' included) one the graph runs.
    static func checkAgainstGraph(_ network: QuantizedNetwork) throws {
        for node in network.graph.nodes where network.layers[node.name] == nil && node.inputs.count >= 2 {
            switch node.op {
            case .conv, .gemm, .matMul:
                guard network.graph.initializers[node.inputs[1]] == nil else {
                    throw ModelFileError.corruptedManifest(reason: "node '\(node.name)' (\(node.op.onnxName)) has constant weights but no quantized layer; rapq quantizes every such layer (was the manifest edited?)")
                }
            default: break
            }
        }
        for (name, layer) in network.layers.sorted(by: { $0.key < $1.key }) {
            guard let input = network.activationQuantizer(for: layer.input)?.scales.first else {
                throw ModelFileError.corruptedManifest(reason: "layer '\(name)' reads '\(layer.input)', which has no activation quantizer; rapq quantizes every layer's input (was the manifest edited?)")
            }
            for (c, b) in layer.bias.enumerated() where abs(Double(b) / (Double(input) * Double(layer.weight.scales[c]))) > Double(Int32.max) {
                throw ModelFileError.corruptedManifest(reason: "layer '\(name)''s bias \(b) at channel \(c) does not fit int32 at its scale")
            }
        }
        do { _ = try inferShapes(of: network.graph, batch: 1) } catch {
            throw ModelFileError.corruptedPayload(reason: "the stored graph does not fit its layers (\(error))")
        }
    }

    /// The graph from its ONNX bytes, with each layer's weight and bias initializers recreated from the
    /// dequantized codes and the exact float bias, so that the graph is complete and valid again.
    static func decodeGraph(_ bytes: Data, layers: [String: QuantizedLayer]) throws -> Graph {
        do {
            var model = try ONNXImporter.modelProto(from: bytes)
            let names = Set(model.graph.node.map(\.name))
            if let missing = layers.keys.sorted().first(where: { !names.contains($0) }) {
                throw ModelFileError.corruptedManifest(reason: "layer '\(missing)' has no node in the stored graph")
            }
            var present = Set(model.graph.initializer.map(\.name))
            for node in model.graph.node {
                guard let layer = layers[node.name] else { continue }
                guard node.input.count >= 2 else {
                    throw ModelFileError.corruptedPayload(reason: "layer node '\(node.name)' has no weight input")
                }
                if present.insert(node.input[1]).inserted {
                    model.graph.initializer.append(ONNXExporter.tensorProto(Tensor(shape: layer.weightShape, data: layer.dequantizedWeights), name: node.input[1]))
                }
                if node.input.count > 2, !node.input[2].isEmpty, present.insert(node.input[2]).inserted {
                    model.graph.initializer.append(ONNXExporter.tensorProto(Tensor(shape: [layer.channels], data: layer.bias), name: node.input[2]))
                }
            }
            return try ONNXImporter.graph(from: model, externalDataDirectory: nil)
        } catch let error as ModelFileError {
            throw error
        } catch {
            throw ModelFileError.corruptedPayload(reason: "the stored graph does not load (\(error))")
        }
    }
}

extension FixedWidthInteger {
    /// The integer whose little-endian bytes are `bytes` (exactly `bitWidth / 8` of them).
    init(littleEndianBytes bytes: ArraySlice<UInt8>) {
        var value = Self.zero
        for (i, byte) in bytes.enumerated() { value |= Self(byte) << (8 * i) }
        self = value
    }
}
