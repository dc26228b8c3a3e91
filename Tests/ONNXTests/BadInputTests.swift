import Foundation
import Graph
import ONNX
import XCTest

/// Malformed, hostile or unsupported models: each must fail with the specific `ONNXError` whose description
/// names the problem, never crash or allocate without bound.
final class BadInputTests: XCTestCase {
    typealias B = ModelBuilding

    /// Imports `data` and returns the error it throws (failing the test if it does not throw an ONNXError).
    func importError(_ data: Data, directory: URL? = nil, file: StaticString = #filePath, line: UInt = #line) -> ONNXError? {
        do {
            _ = try ONNXImporter.load(data: data, externalDataDirectory: directory)
            XCTFail("import succeeded", file: file, line: line)
        } catch let error as ONNXError {
            return error
        } catch {
            XCTFail("unexpected error type: \(error)", file: file, line: line)
        }
        return nil
    }

    func importError(_ model: Onnx_ModelProto, directory: URL? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> ONNXError? {
        importError(try B.bytes(model), directory: directory, file: file, line: line)
    }

    func testValidModelImports() throws {
        let graph = try ONNXImporter.load(data: B.bytes(B.convRelu()), externalDataDirectory: nil)
        XCTAssertEqual(graph.nodes.map(\.op.onnxName), ["Conv", "Relu"])
        XCTAssertEqual(graph.inputs, [ValueInfo(name: "x", dimensions: [nil, 2, 4, 4])])
        XCTAssertEqual(graph.initializers["W"]?.shape, [3, 2, 3, 3])
    }

    func testTruncatedFile() throws {
        let data = try B.bytes(B.convRelu())
        let error = importError(data.prefix(data.count / 2))
        guard case .malformedProtobuf? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertTrue(error!.description.contains("truncated or corrupted"), error!.description)
    }

    func testRandomBytes() {
        // A fixed-seed xorshift generator: the same bytes on every run.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let bytes = (0..<4096).map { _ -> UInt8 in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
        let error = importError(Data(bytes))
        guard case .malformedProtobuf? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertTrue(error!.description.contains("not a valid ONNX model"), error!.description)
    }

    func testEmptyFileIsRejected() {
        let error = importError(Data())
        // An empty message is a valid (empty) ModelProto: it lacks the opset, then the graph.
        guard case .unsupportedOpset? = error else { return XCTFail("\(String(describing: error))") }
    }

    func testCycle() throws {
        let model = B.model(
            nodes: [
                B.node("Add", ["x", "b"], ["a"], name: "first"),
                B.node("Relu", ["a"], ["b"], name: "second"),
                B.node("Relu", ["b"], ["y"], name: "after"),
            ],
            inputs: [B.value("x", [1, 4])], outputs: [B.value("y", [1, 4])])
        let error = try importError(model)
        XCTAssertEqual(error, .cycle(nodes: ["'first' (Add)", "'second' (Relu)"]))
        XCTAssertTrue(error!.description.contains("cycle through nodes 'first' (Add), 'second' (Relu)"), error!.description)
    }

    func testNodesOutOfOrderAreSorted() throws {
        var model = B.convRelu()
        model.graph.node.reverse()
        let graph = try ONNXImporter.load(data: B.bytes(model), externalDataDirectory: nil)
        XCTAssertEqual(graph.nodes.map(\.name), ["conv", "relu"])
    }

    func testMissingInitializer() throws {
        var model = B.convRelu()
        model.graph.initializer.removeAll { $0.name == "W" }
        let error = try importError(model)
        XCTAssertEqual(error, .missingInput(node: "conv", op: "Conv", tensor: "W"))
        XCTAssertTrue(error!.description.contains("node 'conv' (Conv) reads tensor 'W'"), error!.description)
    }

    func testDimsDoNotMatchData() throws {
        var model = B.convRelu()
        model.graph.initializer[1] = B.floats("B", dims: [3], [1, 2, 3, 4, 5])
        let error = try importError(model)
        XCTAssertEqual(error, .dataSizeMismatch(tensor: "B", dims: [3], expected: 3, actual: 5, unit: "elements"))
        XCTAssertTrue(error!.description.contains("need 3 elements"), error!.description)

        // The same with raw_data: 7 bytes cannot hold 3 floats.
        var raw = Onnx_TensorProto()
        raw.name = "B"
        raw.dataType = 1
        raw.dims = [3]
        raw.rawData = Data(repeating: 0, count: 7)
        model.graph.initializer[1] = raw
        XCTAssertEqual(try importError(model), .dataSizeMismatch(tensor: "B", dims: [3], expected: 12, actual: 7, unit: "bytes"))
    }

    func testNegativeDims() throws {
        var model = B.convRelu()
        model.graph.initializer[1] = B.floats("B", dims: [-3], [1, 2, 3])
        let error = try importError(model)
        guard case .invalidDimensions(let tensor, let dims, _)? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertEqual(tensor, "B")
        XCTAssertEqual(dims, [-3])
        XCTAssertTrue(error!.description.contains("dimension -3 is negative"), error!.description)

        var input = B.convRelu()
        input.graph.input = [B.value("x", [-1, 2, 4, 4])]
        guard case .invalidDimensions(tensor: "x", _, _)? = try importError(input) else { return XCTFail() }
    }

    func testAbsurdDims() throws {
        // 2^20 x 2^20 = 2^40 elements claimed, 12 bytes present: rejected before any allocation.
        var model = B.convRelu()
        var huge = Onnx_TensorProto()
        huge.name = "B"
        huge.dataType = 1
        huge.dims = [1 << 20, 1 << 20]
        huge.rawData = Data(repeating: 0, count: 12)
        model.graph.initializer[1] = huge
        let error = try importError(model)
        guard case .invalidDimensions(tensor: "B", dims: [1 << 20, 1 << 20], _)? = error else {
            return XCTFail("\(String(describing: error))")
        }
        XCTAssertTrue(error!.description.contains("more than 2^31 elements"), error!.description)

        // One dimension alone above the limit; and a product that overflows Int64.
        huge.dims = [1 << 40]
        model.graph.initializer[1] = huge
        guard case .invalidDimensions? = try importError(model) else { return XCTFail() }
        huge.dims = [1 << 31, 1 << 31, 1 << 31]
        model.graph.initializer[1] = huge
        guard case .invalidDimensions? = try importError(model) else { return XCTFail() }
    }

    func testUnsupportedOperatorsAreListedTogether() throws {
        var model = B.convRelu()
        model.graph.node[1] = B.node("LSTM", ["c"], ["h"], name: "rnn")
        model.graph.node.append(B.node("Einsum", ["h"], ["l"], name: "norm1"))
        model.graph.node.append(B.node("LSTM", ["l"], ["y"], name: "rnn2"))
        let error = try importError(model)
        XCTAssertEqual(error, .unsupportedOperators([UnsupportedOperator(op: "LSTM", nodes: ["rnn", "rnn2"]),
                                                     UnsupportedOperator(op: "Einsum", nodes: ["norm1"])],
                                                    supported: ONNXImporter.supportedOperators))
        let text = error!.description
        XCTAssertTrue(text.contains("3 nodes with 2 operators"), text)
        XCTAssertTrue(text.contains("LSTM: 2 nodes ('rnn', 'rnn2')") && text.contains("Einsum: 1 node ('norm1')"), text)
        XCTAssertTrue(text.contains("Conv") && text.contains("BatchNormalization") && text.contains("Gemm"), text)

        var custom = B.convRelu()
        custom.graph.node[1].domain = "com.microsoft"
        XCTAssertTrue(try importError(custom)!.description.contains("com.microsoft.Relu"))
    }

    /// Shape arithmetic on a dimension the input leaves symbolic cannot be evaluated at import: the error
    /// names the node.
    func testShapeOfSymbolicDimensionIsNamed() throws {
        var shape = Onnx_TensorProto()
        shape.name = "one"; shape.dataType = 7; shape.dims = [1]; shape.int64Data = [1]
        let model = B.model(
            nodes: [B.node("Shape", ["x"], ["s"], name: "read_shape"),
                    B.node("Reshape", ["x", "s"], ["y"], name: "reshape")],
            inputs: [B.value("x", [nil, 2, nil, 4])], outputs: [B.value("y", [nil, 2, nil, 4])], initializers: [shape])
        let error = try importError(model)
        guard case .cannotFold(node: "read_shape", op: "Shape", _)? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertTrue(error!.description.contains("not known at import"), error!.description)
    }

    /// A Reshape target with two entries that follow the batch cannot be written for every batch.
    func testReshapeWithTwoBatchDependentEntriesIsRefused() throws {
        func int64(_ name: String, _ values: [Int64]) -> Onnx_TensorProto {
            var t = Onnx_TensorProto()
            t.name = name; t.dataType = 7; t.dims = [Int64(values.count)]; t.int64Data = values
            return t
        }
        let model = B.model(
            nodes: [B.node("Shape", ["x"], ["s"], name: "shape"),
                    B.node("Gather", ["s", "zero"], ["n"], name: "batch", attributes: [B.int("axis", 0)]),
                    B.node("Mul", ["n", "two"], ["n2"], name: "double"),
                    B.node("Concat", ["n2", "n2", "minus"], ["t"], name: "target", attributes: [B.int("axis", 0)]),
                    B.node("Reshape", ["x", "t"], ["y"], name: "reshape")],
            inputs: [B.value("x", [1, 4, 4, 4])], outputs: [B.value("y", [nil, nil, nil])],
            initializers: [int64("zero", [0]), int64("two", [2]), int64("minus", [-1])])
        let error = try importError(model)
        guard case .batchDependent(node: "reshape", op: "Reshape", _)? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertTrue(error!.description.contains("dynamic_axes"), error!.description)
    }

    /// A Gather of run-time data imports only as a view (the positions 0..n-1 of the flattened tensor, the
    /// export batch first); reversed positions or another axis are refused, naming the node.
    func testGatherOfRunTimeDataOtherThanAViewIsRefused() throws {
        func gatherModel(_ positions: [Int64], axis: Int64, indexDims: [Int64]) -> Onnx_ModelProto {
            var flat = Onnx_TensorProto(), indices = Onnx_TensorProto()
            flat.name = "flat_shape"; flat.dataType = 7; flat.dims = [1]; flat.int64Data = [-1]
            indices.name = "positions"; indices.dataType = 7; indices.dims = indexDims; indices.int64Data = positions
            return B.model(
                nodes: [B.node("Reshape", ["x", "flat_shape"], ["f"], name: "flatten"),
                        B.node("Gather", ["f", "positions"], ["y"], name: "pick", attributes: [B.int("axis", axis)])],
                inputs: [B.value("x", [1, 4, 1, 1])], outputs: [B.value("y", [1, 4, 1, 1])], initializers: [flat, indices])
        }
        let graph = try ONNXImporter.load(data: try B.bytes(gatherModel([0, 1, 2, 3], axis: 0, indexDims: [1, 4, 1, 1])),
                                          externalDataDirectory: nil)
        XCTAssertEqual(graph.nodes.last?.op, .reshape(shape: [-1, 4, 1, 1], allowZero: false), "the view follows the batch")
        for (positions, axis) in [([3, 2, 1, 0] as [Int64], Int64(0)), ([0, 1, 2, 3], 1)] {
            let error = try importError(gatherModel(positions, axis: axis, indexDims: [1, 4, 1, 1]))
            guard case .cannotFold(node: "pick", op: "Gather", _)? = error else { return XCTFail("\(String(describing: error))") }
            XCTAssertTrue(error!.description.contains("as a view"), error!.description)
        }
    }

    func testUnsupportedOpset() throws {
        for version: Int64 in [6, 30] {
            var model = B.convRelu()
            model.opsetImport[0].version = version
            let error = try importError(model)
            XCTAssertEqual(error, .unsupportedOpset(domain: "", version: Int(version), supported: 7...25))
            XCTAssertTrue(error!.description.contains("opset \(version)"), error!.description)
        }
        var none = B.convRelu()
        none.opsetImport[0].domain = "ai.onnx.ml"
        XCTAssertEqual(try importError(none), .unsupportedOpset(domain: "", version: nil, supported: 7...25))
    }

    func testDuplicateOutputNames() throws {
        var model = B.convRelu()
        model.graph.node[1].output = ["c"]
        let error = try importError(model)
        XCTAssertEqual(error, .duplicateOutput(tensor: "c", producers: ["node 'conv' (Conv)", "node 'relu' (Relu)"]))
    }

    func testUnsupportedDataType() throws {
        var model = B.convRelu()
        var int8 = Onnx_TensorProto()
        int8.name = "B"
        int8.dataType = 3
        int8.dims = [3]
        int8.rawData = Data([1, 2, 3])
        model.graph.initializer[1] = int8
        let error = try importError(model)
        XCTAssertEqual(error, .unsupportedDataType(tensor: "B", dataType: 3, expected: "FLOAT (float32)"))
        XCTAssertTrue(error!.description.contains("element type INT8"), error!.description)
    }

    func testOneDimensionalConvIsUnsupported() throws {
        var model = B.convRelu()
        model.graph.initializer[0] = B.floats("W", dims: [3, 2, 3], [Float](repeating: 0, count: 18))
        model.graph.node[0].attribute = [B.ints("kernel_shape", [3])]
        let error = try importError(model)
        guard case .unsupportedAttribute(node: "conv", op: "Conv", attribute: "kernel_shape", _, _)? = error else {
            return XCTFail("\(String(describing: error))")
        }
        XCTAssertTrue(error!.description.contains("1-D"), error!.description)
    }

    func testUnknownAttributeIsRejected() throws {
        var model = B.convRelu()
        model.graph.node[1].attribute = [B.int("alpha", 2)]
        guard case .unsupportedAttribute(node: "relu", op: "Relu", attribute: "alpha", _, _)? = try importError(model) else {
            return XCTFail()
        }
    }

    func testExtremeAttributeValuesAreErrorsNotCrashes() throws {
        for value in [Int64.min, Int64.max, -1, 0] {
            var model = B.convRelu()
            model.graph.node[0].attribute = [B.ints("kernel_shape", [3, 3]), B.ints("strides", [value, 1])]
            guard case .unsupportedAttribute(node: "conv", op: "Conv", attribute: "strides", _, _)? = try importError(model) else {
                return XCTFail("strides \(value)")
            }
        }
    }

    /// NaN or infinite float attributes (a HardSigmoid's alpha) are refused at import instead of quantizing to
    /// a model that computes NaN. A Clip whose min exceeds its max follows ONNX (every value becomes max: the
    /// conformance case test_clip_min_greater_than_max checks the values) and is imported as a Clip to
    /// [max, max], which calibrates to a single grid point instead of an inverted range.
    func testNonFiniteFloatAttributesAreRefusedAndInvertedClipFollowsONNX() throws {
        for value in [Float.nan, .infinity] {
            var model = B.convRelu()
            model.graph.node[1].opType = "HardSigmoid"
            model.graph.node[1].attribute = [B.float("alpha", value)]
            guard case .unsupportedAttribute(node: "relu", op: "HardSigmoid", attribute: "alpha", _, _)? = try importError(model) else {
                return XCTFail("alpha \(value)")
            }
        }
        var model = B.convRelu()
        model.graph.node[1].opType = "Clip"
        model.graph.node[1].attribute = [B.float("min", 6), B.float("max", 0.5)]
        model.opsetImport[0].version = 9
        let graph = try ONNXImporter.load(data: B.bytes(model), externalDataDirectory: nil)
        guard case .clip(let low, let high)? = graph.nodes.first(where: { $0.name == "relu" })?.op else {
            return XCTFail("the Clip is imported")
        }
        XCTAssertEqual([low, high], [0.5, 0.5])
        model.graph.node[1].attribute = [B.float("min", .nan)]
        guard case .unsupportedAttribute(node: "relu", op: "Clip", _, _, _)? = try importError(model) else {
            return XCTFail("NaN Clip bound")
        }
    }

    func testGraphInputWithoutShape() throws {
        var model = B.convRelu()
        model.graph.input[0].type.tensorType.clearShape()
        guard case .invalidValueInfo(tensor: "x", let reason)? = try importError(model) else { return XCTFail() }
        XCTAssertTrue(reason.contains("declares no shape"), reason)
    }

    func testReshapeNeedsConstantShape() throws {
        let model = B.model(
            nodes: [B.node("Reshape", ["x", "s"], ["y"], name: "r")],
            inputs: [B.value("x", [2, 3]), B.value("s", [2])], outputs: [B.value("y", [3, 2])])
        let error = try importError(model)
        XCTAssertEqual(error, .nonConstantOperand(node: "r", op: "Reshape", tensor: "s", role: "target shape"))
    }

    func testTrainingOutputsInUseAreRejected() throws {
        let stats = ["s", "b", "m", "v"].map { B.floats($0, dims: [2], [1, 1]) }
        let bn = B.node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "running_mean"], name: "bn")
        let unused = B.model(nodes: [bn], inputs: [B.value("x", [1, 2])], outputs: [B.value("y", [1, 2])], initializers: stats)
        XCTAssertNoThrow(try ONNXImporter.load(data: B.bytes(unused), externalDataDirectory: nil))
        let used = B.model(nodes: [bn], inputs: [B.value("x", [1, 2])],
                           outputs: [B.value("y", [1, 2]), B.value("running_mean", [2])], initializers: stats)
        guard case .unsupportedAttribute(node: "bn", _, _, _, _)? = try importError(used) else { return XCTFail() }
    }

    // MARK: - External data

    func externalModel(location: String, offset: Int? = nil, length: Int? = nil) -> Onnx_ModelProto {
        var model = B.convRelu()
        var bias = Onnx_TensorProto()
        bias.name = "B"
        bias.dataType = 1
        bias.dims = [3]
        bias.dataLocation = .external
        func entry(_ key: String, _ value: String) -> Onnx_StringStringEntryProto {
            var e = Onnx_StringStringEntryProto()
            e.key = key
            e.value = value
            return e
        }
        bias.externalData = [entry("location", location)]
        if let offset { bias.externalData.append(entry("offset", "\(offset)")) }
        if let length { bias.externalData.append(entry("length", "\(length)")) }
        model.graph.initializer[1] = bias
        return model
    }

    func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("onnx-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func testExternalDataIsReadRelativeToTheModel() throws {
        let directory = try temporaryDirectory()
        var bytes = Data([0xAA, 0xBB])  // 2 bytes of padding before the tensor
        for v: Float in [0.5, -1.5, 2.25] { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        try bytes.write(to: directory.appendingPathComponent("weights.bin"))
        let modelURL = directory.appendingPathComponent("model.onnx")
        try B.bytes(externalModel(location: "weights.bin", offset: 2, length: 12)).write(to: modelURL)
        let graph = try ONNXImporter.load(contentsOf: modelURL)
        XCTAssertEqual(graph.initializers["B"]?.data, [0.5, -1.5, 2.25])

        // The declared length must match the dims; a file shorter than offset + length is truncated.
        try B.bytes(externalModel(location: "weights.bin", offset: 2, length: 8)).write(to: modelURL)
        XCTAssertThrowsError(try ONNXImporter.load(contentsOf: modelURL)) { error in
            XCTAssertEqual(error as? ONNXError, .dataSizeMismatch(tensor: "B", dims: [3], expected: 12, actual: 8, unit: "bytes"))
        }
        try B.bytes(externalModel(location: "weights.bin", offset: 4, length: 12)).write(to: modelURL)
        XCTAssertThrowsError(try ONNXImporter.load(contentsOf: modelURL)) { error in
            XCTAssertTrue("\(error)".contains("truncated"), "\(error)")
        }
    }

    func testExternalDataPathTraversalIsRejected() throws {
        let directory = try temporaryDirectory()
        for location in ["../secret.bin", "/etc/passwd", "sub/../../x.bin", "..\\x.bin"] {
            let error = try importError(externalModel(location: location), directory: directory)
            guard case .externalData(tensor: "B", let reason)? = error else { return XCTFail("\(location): \(String(describing: error))") }
            XCTAssertTrue(reason.contains("leaves the model's directory"), reason)
        }
        let fromMemory = try importError(externalModel(location: "weights.bin"))
        XCTAssertTrue(fromMemory!.description.contains("loaded from memory"), fromMemory!.description)
        let missing = try importError(externalModel(location: "absent.bin"), directory: directory)
        XCTAssertTrue(missing!.description.contains("missing"), missing!.description)
    }

    /// A FIFO, a folder or a device named as external data is refused at once; opening a FIFO would block.
    func testExternalDataMustBeARegularFile() throws {
        let directory = try temporaryDirectory()
        XCTAssertEqual(mkfifo(directory.appendingPathComponent("pipe.bin").path, 0o600), 0)
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("folder.bin"), withIntermediateDirectories: true)
        for (location, kind) in [("pipe.bin", "a FIFO"), ("folder.bin", "a folder")] {
            let error = try importError(externalModel(location: location), directory: directory)
            guard case .externalData(tensor: "B", let reason)? = error else { return XCTFail("\(location): \(String(describing: error))") }
            XCTAssertTrue(reason.contains(kind), reason)
        }
    }

    func testFolderAndEmptyFileGiveClearMessages() throws {
        let directory = try temporaryDirectory()
        XCTAssertThrowsError(try ONNXImporter.load(contentsOf: directory)) { error in
            XCTAssertTrue("\(error)".contains("it is a folder, not a model file"), "\(error)")
        }
        let empty = directory.appendingPathComponent("empty.onnx")
        try Data().write(to: empty)
        XCTAssertThrowsError(try ONNXImporter.load(contentsOf: empty)) { error in
            XCTAssertTrue("\(error)".contains("the file is empty (0 bytes)"), "\(error)")
        }
    }

    /// Found by fuzzing: a graph without outputs used to load and then index its first output.
    func testGraphWithoutOutputsIsRefused() throws {
        var model = B.convRelu()
        model.graph.output = []
        let error = try importError(model)
        XCTAssertTrue(error?.description.contains("declares no outputs") == true, String(describing: error))
    }

    func testUnreadableFile() {
        XCTAssertThrowsError(try ONNXImporter.load(contentsOf: URL(fileURLWithPath: "/nonexistent/model.onnx"))) { error in
            guard case .unreadableFile? = error as? ONNXError else { return XCTFail("\(error)") }
        }
    }
}
