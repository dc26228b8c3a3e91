import Foundation
import RAPQ
import XCTest

/// `--json` on inspect, quantize, verify and eval: standard output is one JSON document holding the same
/// facts as the text form (schema: docs/json.md); progress and notes go to standard error.
final class JSONOutputTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: CommandLineTests.binary.path) else {
            throw XCTSkip("\(CommandLineTests.binary.path) is not built; run `swift build` first (.ci/run does)")
        }
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("rapq-json-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let scratch { try? FileManager.default.removeItem(at: scratch) }
    }

    /// Runs the binary with standard output and standard error kept apart (in files, so neither pipe can fill).
    func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let out = scratch.appendingPathComponent("stdout-\(UUID().uuidString)"), err = scratch.appendingPathComponent("stderr-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        process.executableURL = CommandLineTests.binary
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        process.waitUntilExit()
        return (process.terminationStatus, try String(contentsOf: out, encoding: .utf8), try String(contentsOf: err, encoding: .utf8))
    }

    /// The document printed by `arguments`, which must be all of standard output.
    func document(_ arguments: [String], status expected: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let (status, stdout, stderr) = try run(arguments)
        XCTAssertEqual(status, expected, stderr, file: file, line: line)
        let object = try JSONSerialization.jsonObject(with: Data(stdout.utf8))
        return try XCTUnwrap(object as? [String: Any], stdout, file: file, line: line)
    }

    func model(_ name: String) -> String { CommandLineTests.root.appendingPathComponent("models/\(name)").path }

    func testInspect() throws {
        let doc = try document(["inspect", model("fmnist-resnet.onnx"), "--json"])
        XCTAssertEqual(doc["supported"] as? Bool, true)
        let text = try run(["inspect", model("fmnist-resnet.onnx"), "--layers"]).stdout
        let layers = try XCTUnwrap(doc["layers"] as? [[String: Any]])
        // The text lists the same layers, and its FLOPs line is the document's total.
        XCTAssertEqual(layers.map { $0["name"] as? String ?? "" }.filter { !text.contains($0) }, [])
        let flops = try XCTUnwrap(doc["flops"] as? Int)
        XCTAssertEqual(flops, layers.map { $0["flops"] as? Int ?? 0 }.reduce(0, +))
        XCTAssertTrue(text.contains(String(format: "FLOPs at batch 1: %.3f G", Double(flops) / 1e9)), text)
        let inputs = try XCTUnwrap(doc["inputs"] as? [[String: Any]])
        XCTAssertEqual((inputs[0]["shape"] as? [Any])?.count, 4)
        XCTAssertTrue((inputs[0]["shape"] as? [Any])?.first is NSNull, "the batch is free")
    }

    /// Unsupported operators are part of the document, all of them, and the status stays 1.
    func testInspectListsUnsupportedOperators() throws {
        var m = Onnx_ModelProto()
        m.irVersion = 7
        var opset = Onnx_OperatorSetIdProto()
        opset.version = 13
        m.opsetImport = [opset]
        for (op, input, output) in [("Tanh", "x", "a"), ("Tanh", "a", "b"), ("Einsum", "b", "y")] {
            var node = Onnx_NodeProto()
            node.opType = op
            node.name = output
            node.input = [input]
            node.output = [output]
            m.graph.node.append(node)
        }
        for (name, list) in [("x", \Onnx_GraphProto.input), ("y", \Onnx_GraphProto.output)] {
            var value = Onnx_ValueInfoProto()
            value.name = name
            value.type.tensorType.elemType = 1
            var dim = Onnx_TensorShapeProto.Dimension()
            dim.dimValue = 2
            value.type.tensorType.shape.dim = [dim]
            m.graph[keyPath: list].append(value)
        }
        let path = scratch.appendingPathComponent("unsupported.onnx")
        try m.serializedData().write(to: path)
        let doc = try document(["inspect", path.path, "--json"], status: 1)
        XCTAssertEqual(doc["supported"] as? Bool, false)
        let unsupported = try XCTUnwrap(doc["unsupported"] as? [[String: Any]])
        XCTAssertEqual(unsupported.map { $0["op"] as? String }, ["Tanh", "Einsum"])
        XCTAssertEqual(unsupported.map { $0["count"] as? Int }, [2, 1])
        XCTAssertEqual(unsupported[0]["nodes"] as? [String], ["a", "b"])
    }

    /// --quiet leaves the results and drops the progress and status lines.
    func testQuiet() throws {
        let out = scratch.appendingPathComponent("q.rapq").path
        let arguments = ["quantize", model("fmnist-resnet.onnx"), "--calib", model("fmnist-calib-256.npy"), "--method", "pot-mse", "-o", out]
        let loud = try run(arguments)
        XCTAssertEqual(loud.status, 0, loud.stderr)
        XCTAssertTrue(loud.stdout.contains("calibrating"), loud.stdout)
        try FileManager.default.removeItem(atPath: out)
        let quiet = try run(arguments + ["--quiet"])
        XCTAssertEqual(quiet.status, 0, quiet.stderr)
        XCTAssertFalse(quiet.stdout.contains("calibrating") || quiet.stdout.contains("preparing"), quiet.stdout)
        XCTAssertTrue(quiet.stdout.contains("wrote \(out)"), quiet.stdout)
    }

    /// quantize, verify and eval: the documents agree with the files written and with the text forms.
    func testQuantizeVerifyEval() throws {
        let out = scratch.appendingPathComponent("m.rapq").path
        let q = try document(["quantize", model("fmnist-resnet.onnx"), "--calib", model("fmnist-calib-256.npy"), "--method", "pot-mse",
                              "--wbits", "4", "--abits", "4", "-o", out, "--json"])
        XCTAssertEqual(q["output"] as? String, out)
        XCTAssertEqual(q["format"] as? String, "rapq")
        XCTAssertEqual(q["method"] as? String, "pot-mse")
        XCTAssertEqual(q["weight_bits"] as? Int, 4)
        XCTAssertEqual(q["integer_only"] as? Bool, true)
        XCTAssertEqual(q["float_nodes"] as? [String], [])
        XCTAssertEqual(q["self_check"] as? String, "passed")
        XCTAssertEqual(q["self_check_failures"] as? [String], [])
        XCTAssertTrue(FileManager.default.fileExists(atPath: out))

        let data = model("fmnist-test-1k.npy"), labels = model("fmnist-test-1k-labels.npy")
        let v = try document(["verify", out, "--data", data, "--json"])
        XCTAssertEqual(v["verified"] as? Bool, true)
        XCTAssertEqual(v["integer_engine_checked"] as? Bool, true)
        XCTAssertEqual(v["integer_only"] as? Bool, true)
        XCTAssertEqual(v["float_nodes"] as? [String], [])
        let checks = try XCTUnwrap(v["checks"] as? [[String: Any]])
        let text = try run(["verify", out, "--data", data]).stdout
        XCTAssertEqual(checks.count, text.components(separatedBy: "\n").filter { $0.hasPrefix("PASS") }.count)
        XCTAssertTrue(checks.allSatisfy { $0["passed"] as? Bool == true && text.contains(($0["name"] as? String) ?? "?") })
        let unchecked = try document(["verify", out, "--json"])
        XCTAssertEqual(unchecked["integer_engine_checked"] as? Bool, false, "without data the integer check did not run")
        XCTAssertNil(unchecked["integer_only"], "not established without data")

        let e = try document(["eval", out, "--integer", "--data", data, "--labels", labels, "--reference", model("fmnist-resnet.onnx"), "--json"])
        XCTAssertEqual(e["engine"] as? String, "integer")
        let metrics = try XCTUnwrap(e["metrics"] as? [String: Any])
        XCTAssertEqual(metrics["samples"] as? Int, 1000)
        let summary = try run(["eval", out, "--integer", "--data", data, "--labels", labels, "--reference", model("fmnist-resnet.onnx")]).stdout
        let top1 = try XCTUnwrap(metrics["top1"] as? Double), agreement = try XCTUnwrap(metrics["agreement"] as? Double)
        XCTAssertTrue(summary.contains(String(format: "top-1 %.2f%%", top1 * 100)), summary)
        XCTAssertTrue(summary.contains(String(format: "agreement with FP32 %.2f%%", agreement * 100)), summary)
        XCTAssertNotNil(metrics["mean_kl"] as? Double)
    }

    /// One weight of 3.2e8 among weights near 0.03 (finite, so accepted): the float32 simulation rounds the
    /// sums it feeds, the integer engine does not, and their activation codes differ by several steps. quantize
    /// says so (exit 1, `self_check: failed` with the failing check) and keeps the file; it never reports success.
    func testSelfCheckFailureIsReported() throws {
        var proto = try Onnx_ModelProto(serializedBytes: Data(contentsOf: URL(fileURLWithPath: model("fmnist-resnet.onnx"))))
        let k = try XCTUnwrap(proto.graph.initializer.firstIndex { $0.name == "block4.c2.weight" })
        let stored = proto.graph.initializer[k]
        var weights = stored.rawData.isEmpty ? stored.floatData : stored.rawData.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        XCTAssertEqual(weights.count, 64 * 64 * 9)
        weights[40 * 64 * 9 + 31 * 9] = 3.2e8
        proto.graph.initializer[k].floatData = []
        proto.graph.initializer[k].rawData = weights.withUnsafeBytes { Data($0) }
        let onnx = scratch.appendingPathComponent("outlier.onnx"), out = scratch.appendingPathComponent("outlier.rapq").path
        try ONNXExporter.write(proto, to: onnx)
        let (status, stdout, stderr) = try run(["quantize", onnx.path, "--calib", model("fmnist-calib-256.npy"), "--method", "pot-mse",
                                                "--wbits", "4", "--abits", "4", "-o", out, "--json"])
        XCTAssertEqual(status, 1, stderr)
        let q = try XCTUnwrap(try? JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any], stderr)
        XCTAssertEqual(q["self_check"] as? String, "failed")
        let failures = try XCTUnwrap(q["self_check_failures"] as? [String])
        XCTAssertTrue(failures.contains { $0.hasPrefix("activation codes") }, "\(failures)")
        XCTAssertTrue(stderr.contains("fails the self-check"), stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out), "the model is kept for inspection")
    }
}
