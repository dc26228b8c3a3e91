import Foundation
import RAPQ
import TestSupport
import XCTest

/// The `rapq` binary on bad input: a clear message, a non-zero exit, and no output file.
final class CommandLineTests: XCTestCase {
    static let root = PipelineTests.root
    /// The `rapq` binary under test: `RAPQ_BINARY` if set (e.g. a build with `--sanitize=address`), else the debug build.
    static var binary: URL {
        ProcessInfo.processInfo.environment["RAPQ_BINARY"].map { URL(fileURLWithPath: $0) } ?? root.appendingPathComponent(".build/debug/rapq")
    }
    var scratch: URL!

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary.path) else {
            throw XCTSkip("\(Self.binary.path) is not built; run `swift build` first (.ci/run does)")
        }
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("rapq-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let scratch { try? FileManager.default.removeItem(at: scratch) }
    }

    /// Runs the binary and returns its exit status and combined output.
    func rapq(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func model(_ name: String) -> String { Self.root.appendingPathComponent("models/\(name)").path }

    func writeNpy(_ tensor: Tensor, _ name: String) throws -> String {
        let url = scratch.appendingPathComponent(name)
        try NumpyFile.write(tensor, to: url)
        return url.path
    }

    func assertFails(_ arguments: [String], saying phrase: String, noFile: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        let (status, output) = try rapq(arguments)
        XCTAssertNotEqual(status, 0, output, file: file, line: line)
        XCTAssertTrue(output.contains(phrase), "expected '\(phrase)' in: \(output)", file: file, line: line)
        XCTAssertFalse(output.contains("Fatal error"), output, file: file, line: line)
        if let noFile { XCTAssertFalse(FileManager.default.fileExists(atPath: noFile), "\(noFile) must not be written", file: file, line: line) }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter { $0.contains(".partial") }
        XCTAssertEqual(leftovers, [], "half-written files left behind", file: file, line: line)
    }

    func testBadQuantizeArguments() throws {
        let calib = model("fmnist-calib-256.npy")
        let out = scratch.appendingPathComponent("out.rapq").path
        try assertFails(["quantize", model("fmnist-resnet.onnx"), "--calib", calib, "--wbits", "9", "-o", out], saying: "--wbits 9 is out of range", noFile: out)
        try assertFails(["quantize", model("fmnist-resnet.onnx"), "--calib", calib, "--abits", "1", "-o", out], saying: "--abits 1 is out of range", noFile: out)
        try assertFails(["quantize", model("fmnist-resnet.onnx"), "--calib", calib, "--method", "rapq", "--iters", "0", "-o", out],
                        saying: "--iters must be at least 1", noFile: out)
        try assertFails(["quantize", model("fmnist-resnet.onnx"), "--calib", calib, "--align-activations", "sometimes", "-o", out],
                        saying: "--align-activations must be 'clip', 'streams', 'all' or 'off'", noFile: out)
        try assertFails(["quantize", scratch.appendingPathComponent("missing.onnx").path, "--calib", calib, "-o", out], saying: "missing.onnx", noFile: out)
        try assertFails(["quantize", model("fmnist-resnet.onnx"), "--calib", calib, "--lp-coefficient", "nan", "-o", out],
                        saying: "--lp-coefficient must be in [0, 7]", noFile: out)
        try assertFails(["quantize", model("fmnist-resnet.onnx"), "--calib", calib, "--augment", "100000000", "-o", out],
                        saying: "--augment must be 0 to 1000", noFile: out)
        let text = scratch.appendingPathComponent("out.txt").path
        try assertFails(["quantize", model("fmnist-resnet.onnx"), "--calib", calib, "-o", text], saying: "neither a .rapq nor an .onnx extension", noFile: text)
        let nowhere = scratch.appendingPathComponent("absent/out.rapq").path
        try assertFails(["quantize", model("fmnist-resnet.onnx"), "--calib", calib, "-o", nowhere], saying: "does not exist", noFile: nowhere)
        let pipe = scratch.appendingPathComponent("pipe.rapq").path
        XCTAssertEqual(mkfifo(pipe, 0o600), 0)
        try assertFails(["quantize", model("fmnist-resnet.onnx"), "--calib", calib, "-o", pipe], saying: "is a FIFO")
        try assertFails(["demo", "--models", scratch.appendingPathComponent("absent").path, "--output-dir", scratch.appendingPathComponent("demo").path],
                        saying: "does not hold the bundled models", noFile: scratch.appendingPathComponent("demo").path)
        try assertFails(["demo", "--wbits", "0", "--output-dir", scratch.appendingPathComponent("demo").path],
                        saying: "--wbits must be 2 to 8", noFile: scratch.appendingPathComponent("demo").path)
    }

    /// A model that returns an inner tensor besides its logits is refused by quantize with the outputs named,
    /// instead of a model whose extra output has no quantizer.
    func testModelWithSeveralOutputsIsRefusedByQuantize() throws {
        var proto = try ONNXImporter.modelProto(from: Data(contentsOf: URL(fileURLWithPath: model("fmnist-resnet.onnx"))))
        var extra = Onnx_ValueInfoProto()
        extra.name = proto.graph.node[0].output[0]
        extra.type.tensorType.elemType = proto.graph.output[0].type.tensorType.elemType
        proto.graph.output.append(extra)
        let twoOutputs = scratch.appendingPathComponent("two-outputs.onnx")
        try proto.serializedData().write(to: twoOutputs)
        let out = scratch.appendingPathComponent("out.rapq").path
        try assertFails(["quantize", twoOutputs.path, "--calib", model("fmnist-calib-256.npy"), "--method", "pot-mse", "-o", out],
                        saying: "it has 2 outputs", noFile: out)
    }

    func testBadMemoryBudgetAndCacheFolder() throws {
        let calib = model("fmnist-calib-256.npy")
        let out = scratch.appendingPathComponent("out.rapq").path
        try assertFails(["quantize", model("fmnist-resnet.onnx"), "--calib", calib, "--method", "rapq", "--max-memory", "2XB", "-o", out],
                        saying: "--max-memory: '2XB' is not a memory size; write a number and a unit, e.g. 2GB", noFile: out)
        let file = try writeNpy(Tensor(shape: [1], repeating: 0), "file.npy")
        try assertFails(["quantize", model("fmnist-resnet.onnx"), "--calib", calib, "--method", "rapq", "--iters", "4",
                         "--cache-dir", file + "/cache", "-o", out],
                        saying: "cannot write the reconstruction cache to '\(file)/cache'", noFile: out)
    }

    func testBadCalibrationData() throws {
        let out = scratch.appendingPathComponent("out.rapq").path
        let wrongShape = try writeNpy(Tensor(shape: [4, 3, 28, 28], repeating: 0.5), "wrong.npy")
        try assertFails(["quantize", model("fmnist-resnet.onnx"), "--calib", wrongShape, "-o", out], saying: "samples have shape [4, 3, 28, 28]", noFile: out)
        var nan = Tensor(shape: [4, 1, 28, 28], repeating: 0.5)
        nan.data[17] = .nan
        let nanFile = try writeNpy(nan, "nan.npy")
        try assertFails(["quantize", model("fmnist-resnet.onnx"), "--calib", nanFile, "-o", out], saying: "NaN or infinite value at flat index 17", noFile: out)
        let few = try writeNpy(Tensor(shape: [8, 1, 28, 28], repeating: 0.1), "few.npy")
        try assertFails(["quantize", model("fmnist-resnet.onnx"), "--calib", few, "--method", "rapq", "-o", out],
                        saying: "fewer than the mini-batch of 32", noFile: out)
        let garbage = scratch.appendingPathComponent("garbage.npy")
        try Data("not numpy".utf8).write(to: garbage)
        try assertFails(["quantize", model("fmnist-resnet.onnx"), "--calib", garbage.path, "-o", out], saying: "not a valid NumPy .npy file", noFile: out)
    }

    func testCorruptedModelAndUnwritableOutput() throws {
        let truncated = scratch.appendingPathComponent("truncated.onnx")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: model("fmnist-resnet.onnx")))
        try bytes.prefix(bytes.count / 3).write(to: truncated)
        let (status, output) = try rapq(["inspect", truncated.path])
        XCTAssertNotEqual(status, 0)
        XCTAssertFalse(output.contains("Fatal error"), output)
        XCTAssertTrue(output.lowercased().contains("truncated") || output.lowercased().contains("corrupt") || output.lowercased().contains("malformed"), output)

        let unwritable = "/nonexistent-folder/out.rapq"
        try assertFails(["quantize", model("fmnist-resnet.onnx"), "--calib", model("fmnist-calib-256.npy"), "--method", "naive-pot", "-o", unwritable],
                        saying: "cannot write '/nonexistent-folder/out.rapq'", noFile: unwritable)
    }

    /// A QDQ export quantizes residual-Add inputs at 8 bits unless told otherwise, so that onnxruntime runs
    /// every convolution of the residual network as QLinearConv (checked in onnxruntime's optimized graph).
    func testQDQExportRunsEveryConvolutionAsIntegerByDefault() throws {
        let (found, missing) = ReferencePython.find(importing: "onnx, onnxruntime, numpy")
        guard let python = found else { throw XCTSkip(missing) }
        let out = scratch.appendingPathComponent("m.qdq.onnx").path
        let (status, output) = try rapq(["quantize", model("fmnist-resnet.onnx"), "--calib", model("fmnist-calib-256.npy"),
                                         "--method", "pot-mse", "--wbits", "4", "--abits", "4", "-o", out])
        XCTAssertEqual(status, 0, output)
        let script = Self.root.appendingPathComponent("tools/check_qdq_onnxruntime.py").path
        let checked = ReferencePython.run(python, [script, out, model("fmnist-test-1k.npy"), "--strict"])
        XCTAssertEqual(checked.status, 0, checked.output)
        XCTAssertTrue(checked.output.contains("\"float_convs\": 0"), checked.output)
        // The paper's placement (no residual-input quantizers) leaves the convolutions that feed the Adds in float.
        let paper = scratch.appendingPathComponent("paper.qdq.onnx").path
        XCTAssertEqual(try rapq(["quantize", model("fmnist-resnet.onnx"), "--calib", model("fmnist-calib-256.npy"), "--method", "pot-mse",
                                 "--wbits", "4", "--abits", "4", "--residual-input-bits", "0", "-o", paper]).status, 0)
        let floatConvs = ReferencePython.run(python, [script, paper, model("fmnist-test-1k.npy")])
        XCTAssertFalse(floatConvs.output.contains("\"float_convs\": 0"), floatConvs.output)
    }

    func testEvalAndVerify() throws {
        let out = scratch.appendingPathComponent("m.rapq").path
        let (status, output) = try rapq(["quantize", model("fmnist-resnet.onnx"), "--calib", model("fmnist-calib-256.npy"), "--method", "pot-mse",
                                         "--wbits", "4", "--abits", "4", "-o", out])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("integer-only: yes"), output)
        let verified = try rapq(["verify", out, "--data", model("fmnist-calib-256.npy")])
        XCTAssertEqual(verified.status, 0, verified.output)
        XCTAssertTrue(verified.output.contains("verified: every check passed"), verified.output)
        // Without data the integer engine is not run, and the report says so instead of claiming it.
        let staticOnly = try rapq(["verify", out])
        XCTAssertEqual(staticOnly.status, 0, staticOnly.output)
        XCTAssertTrue(staticOnly.output.contains("SKIP  integer engine equals simulation: not run"), staticOnly.output)
        XCTAssertFalse(staticOnly.output.contains("verified: every check passed"), staticOnly.output)
        let evaluated = try rapq(["eval", out, "--integer", "--data", model("fmnist-test-1k.npy"), "--labels", model("fmnist-test-1k-labels.npy")])
        XCTAssertEqual(evaluated.status, 0, evaluated.output)
        XCTAssertTrue(evaluated.output.contains("top-1"), evaluated.output)
        let labels = try writeNpy(Tensor(shape: [5], repeating: 1), "labels.npy")
        try assertFails(["eval", out, "--data", model("fmnist-test-1k.npy"), "--labels", labels], saying: "--labels has 5 entries")
        let rtn = scratch.appendingPathComponent("rtn.rapq").path
        XCTAssertEqual(try rapq(["quantize", model("fmnist-resnet.onnx"), "--calib", model("fmnist-calib-256.npy"), "--method", "rtn", "-o", rtn]).status, 0)
        try assertFails(["verify", rtn], saying: "FAIL  weight scales are exact powers of two")
        try assertFails(["eval", rtn, "--integer", "--data", model("fmnist-test-1k.npy")], saying: "power-of-two")
        try assertFails(["quantize", model("fmnist-resnet.onnx"), "--calib", model("fmnist-calib-256.npy"), "--method", "rapq",
                         "--resume", scratch.appendingPathComponent("empty").path, "-o", scratch.appendingPathComponent("resumed.rapq").path],
                        saying: "no checkpoint in")
    }

    /// The same command gives the same bytes on one thread and on all cores.
    func testOutputDoesNotDependOnThreadCount() throws {
        var outputs: [Data] = []
        for threads in ["1", "2"] {
            let out = scratch.appendingPathComponent("t\(threads).rapq")
            let run = try rapq(["quantize", model("fmnist-mobilenetv2.onnx"), "--calib", model("fmnist-calib-256.npy"), "--method", "rapq",
                                "--wbits", "2", "--abits", "4", "--iters", "16", "--act-iters", "8", "--exp-iters", "8", "-o", out.path],
                               environment: ["RAPQ_THREADS": threads])
            XCTAssertEqual(run.status, 0, run.output)
            outputs.append(try Data(contentsOf: out))
        }
        XCTAssertEqual(outputs[0], outputs[1])
    }

    /// An output that names an input, directly or through a link, is refused before any work; the input is unchanged.
    func testOutputThatIsAnInputIsRefused() throws {
        let onnx = scratch.appendingPathComponent("m.onnx"), calib = scratch.appendingPathComponent("c.npy")
        try FileManager.default.copyItem(atPath: model("fmnist-resnet.onnx"), toPath: onnx.path)
        try FileManager.default.copyItem(atPath: model("fmnist-calib-256.npy"), toPath: calib.path)
        let soft = scratch.appendingPathComponent("soft.npy").path, hard = scratch.appendingPathComponent("hard.onnx").path
        XCTAssertEqual(symlink(calib.path, soft), 0)
        XCTAssertEqual(link(onnx.path, hard), 0)
        let before = [try Data(contentsOf: onnx), try Data(contentsOf: calib)]
        let m = onnx.path, c = calib.path
        try assertFails(["quantize", m, "--calib", c, "--method", "rtn", "-o", m], saying: "-o '\(m)' is the same file as the model")
        try assertFails(["quantize", m, "--calib", c, "--method", "rtn", "-o", soft], saying: "is the same file as --calib")
        try assertFails(["quantize", m, "--calib", c, "--method", "rtn", "-o", hard], saying: "is the same file as the model")
        try assertFails(["quantize", m, "--calib", c, "--method", "rapq", "--checkpoint-dir", scratch.path, "-o", scratch.path + "/o.rapq"],
                        saying: "--checkpoint-dir '\(scratch.path)' holds the model")
        try assertFails(["run", m, "-i", c, "-o", soft], saying: "-o '\(soft)' is the same file as -i")
        try assertFails(["run", m, "-i", c, "-o", hard], saying: "is the same file as the model")
        try assertFails(["eval", m, "--data", c, "--save-logits", scratch.path + "/./c.npy"], saying: "--save-logits")
        XCTAssertEqual([try Data(contentsOf: onnx), try Data(contentsOf: calib)], before)
    }

    /// SIGINT and SIGTERM during reconstruction: a message, exit status 130 / 143, no cache folder, no output;
    /// a stale cache folder of a dead process is removed when the next run starts.
    func testSignalsStopCleanly() throws {
        let cache = scratch.appendingPathComponent("cache")
        try FileManager.default.createDirectory(at: cache, withIntermediateDirectories: true)
        let dead = Process()
        dead.executableURL = URL(fileURLWithPath: "/bin/true")
        try dead.run()
        dead.waitUntilExit()
        let stale = cache.appendingPathComponent("rapq-cache-\(dead.processIdentifier)-42")
        try FileManager.default.createDirectory(at: stale, withIntermediateDirectories: true)
        for (signal, status, name) in [(SIGINT, Int32(130), "SIGINT"), (SIGTERM, Int32(143), "SIGTERM")] {
            let out = scratch.appendingPathComponent("interrupted.rapq")
            let process = Process()
            process.executableURL = Self.binary
            process.arguments = ["quantize", model("fmnist-resnet.onnx"), "--calib", model("fmnist-calib-256.npy"), "--method", "rapq",
                                 "--iters", "100000", "--max-memory", "1MB", "--cache-dir", cache.path, "-o", out.path]
            let pipe = Pipe()
            process.standardOutput = FileHandle.nullDevice
            process.standardError = pipe
            try process.run()
            // Wait until reconstruction runs (its cache folder exists), then interrupt.
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline, !(try FileManager.default.contentsOfDirectory(atPath: cache.path).contains { $0.hasPrefix("rapq-cache-\(process.processIdentifier)-") }) {
                usleep(50_000)
            }
            usleep(300_000)
            kill(process.processIdentifier, signal)
            let message = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationReason, .exit, message)
            XCTAssertEqual(process.terminationStatus, status, message)
            XCTAssertTrue(message.contains("interrupted by \(name)"), message)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cache.path), [], "cache folders left behind")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        }
    }

    /// A write that runs out of room (here a file-size limit, as on a full disk) fails with a message and leaves
    /// neither the output nor its temporary behind, for the QDQ and the .rapq writers.
    func testFullDiskLeavesNoTemporary() throws {
        for name in ["full.qdq.onnx", "full.rapq"] {
            let out = scratch.appendingPathComponent(name).path
            let shell = "ulimit -f 100; exec '\(Self.binary.path)' quantize '\(model("fmnist-resnet.onnx"))' --calib '\(model("fmnist-calib-256.npy"))' --method pot-mse -o '\(out)'"
            let (status, output) = try run(URL(fileURLWithPath: "/bin/sh"), ["-c", shell])
            XCTAssertEqual(status, 1, output)
            XCTAssertTrue(output.contains("File too large"), output)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch.path), [], "output or temporary left behind")
        }
    }

    /// Runs any executable; its exit status and combined output.
    func run(_ executable: URL, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
