import Foundation
import RAPQ
import XCTest

/// A deterministic corpus of hostile inputs (ONNX models, .npy arrays, .rapq files, checkpoints, options),
/// built inside the test and run through the `rapq` binary. Every case must exit with a non-zero status and
/// a message on stderr, never by a signal or a hang, must leave every input byte for byte unchanged, and
/// must leave no temporary or cache folder behind.
final class HostileInputCorpusTests: XCTestCase {
    /// One hostile invocation: its class (for the counts), a name, the arguments, and what stderr must say.
    struct Case {
        var kind: String
        var name: String
        var arguments: [String]
        var phrase: String?
    }

    var folder: URL!
    var cases: [Case] = []

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: CommandLineTests.binary.path) else {
            throw XCTSkip("\(CommandLineTests.binary.path) is not built; run `swift build` first (.ci/run does)")
        }
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("rapq-corpus-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let folder { try? FileManager.default.removeItem(at: folder) }
    }

    func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    func add(_ kind: String, _ name: String, _ arguments: [String], saying phrase: String? = nil) {
        cases.append(Case(kind: kind, name: name, arguments: arguments, phrase: phrase))
    }

    // MARK: - The corpus

    func testHostileInputsFailCleanly() throws {
        let started = Date()
        try buildModelCases()
        try buildNumpyCases()
        try buildRAPQCases()
        try buildCheckpointCases()
        buildOptionCases()
        XCTAssertGreaterThanOrEqual(cases.count, 150)

        let inputs = try snapshot()
        var failures: [String] = []
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: cases.count) { i in
            let c = cases[i]
            let problem = run(c)
            if let problem { lock.lock(); failures.append("[\(c.kind)] \(c.name): \(problem)"); lock.unlock() }
        }
        for failure in failures.sorted() { XCTFail(failure) }
        XCTAssertEqual(try snapshot(), inputs, "an input file changed")
        let leftovers = try FileManager.default.subpathsOfDirectory(atPath: folder.path).filter { $0.contains(".partial") || $0.contains("rapq-cache-") }
        XCTAssertEqual(leftovers, [], "temporary files left behind")

        var counts: [String: Int] = [:]
        for c in cases { counts[c.kind, default: 0] += 1 }
        print("hostile-input corpus: \(cases.count) cases in \(String(format: "%.1f", Date().timeIntervalSince(started))) s; "
              + counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
    }

    /// Runs one case; nil when it failed as it should, else what went wrong.
    func run(_ c: Case) -> String? {
        let process = Process()
        process.executableURL = CommandLineTests.binary
        process.arguments = c.arguments
        process.currentDirectoryURL = folder
        var environment = ProcessInfo.processInfo.environment
        environment["RAPQ_THREADS"] = "1"
        environment["TMPDIR"] = folder.path
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        do { try process.run() } catch { return "could not start: \(error)" }
        let timer = DispatchWorkItem { process.terminate() }
        DispatchQueue.global().asyncAfter(deadline: .now() + 60, execute: timer)
        // Both pipes are drained at once, so a chatty process never blocks on a full pipe.
        final class Box: @unchecked Sendable { var data = Data() }
        let captured = Box()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { captured.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        _ = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        timer.cancel()
        let stderr = String(decoding: captured.data, as: UTF8.self)
        if process.terminationReason == .uncaughtSignal { return "killed by signal \(process.terminationStatus) (a hang or a trap); stderr: \(stderr.suffix(400))" }
        if process.terminationStatus == 0 { return "exited 0; stderr: \(stderr.suffix(300))" }
        if stderr.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return "no message on stderr" }
        if stderr.contains("Fatal error") { return "trapped: \(stderr.suffix(300))" }
        if stderr.contains("Sanitizer") { return "sanitizer report: \(stderr.prefix(600))" }
        if let phrase = c.phrase, !stderr.contains(phrase) { return "expected '\(phrase)' in: \(stderr.suffix(400))" }
        return nil
    }

    /// Every regular file of the corpus folder (inputs only: outputs are never written) and its bytes.
    func snapshot() throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.subpathsOfDirectory(atPath: folder.path) {
            var isDirectory: ObjCBool = false
            let full = path(name)
            var info = stat()
            guard lstat(full, &info) == 0, info.st_mode & S_IFMT == S_IFREG,
                  FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            files[name] = try Data(contentsOf: URL(fileURLWithPath: full))
        }
        return files
    }

    // MARK: - Files

    func write(_ data: Data, _ name: String) throws -> String {
        let url = folder.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: url)
        return url.path
    }

    func writeNpy(_ tensor: Tensor, _ name: String) throws -> String {
        try write(NumpyFile.encode(tensor), name)
    }

    func writeModel(_ model: Onnx_ModelProto, _ name: String) throws -> String {
        try ONNXExporter.write(model, to: folder.appendingPathComponent(name))
        return path(name)
    }

    /// A deterministic pseudo-random tensor (a linear congruential sequence in [-1, 1)).
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed &* 6364136223846793005 &+ 1442695040888963407
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int(state >> 40) % 2000 - 1000) / 1000
        }
    }

    // MARK: - ONNX models

    static func attribute(_ name: String, ints: [Int64]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .ints
        a.ints = ints
        return a
    }

    static func attribute(_ name: String, int: Int64) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .int
        a.i = int
        return a
    }

    static func attribute(_ name: String, float: Float) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .float
        a.f = float
        return a
    }

    static func initializer(_ name: String, _ dims: [Int64], _ values: [Float]) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name
        t.dataType = 1
        t.dims = dims
        t.floatData = values
        return t
    }

    static func valueInfo(_ name: String, _ dims: [Int64?]) -> Onnx_ValueInfoProto {
        var v = Onnx_ValueInfoProto()
        v.name = name
        var t = Onnx_TypeProto.Tensor()
        t.elemType = 1
        t.shape.dim = dims.map { d in
            var dim = Onnx_TensorShapeProto.Dimension()
            if let d { dim.dimValue = d } else { dim.dimParam = "N" }
            return dim
        }
        v.type.tensorType = t
        return v
    }

    /// x [N, 1, 8, 8] -> Conv 3x3 (4) -> Relu -> Conv 3x3 (4) -> Relu -> GlobalAveragePool -> Flatten -> Gemm (3 classes).
    static func tinyModel(channels: Int64 = 4, classes: Int64 = 3, pads: [Int64] = [1, 1, 1, 1], weight: (Int, Float)? = nil) -> Onnx_ModelProto {
        func node(_ op: String, _ inputs: [String], _ output: String, _ attributes: [Onnx_AttributeProto] = []) -> Onnx_NodeProto {
            var n = Onnx_NodeProto()
            n.opType = op
            n.name = output
            n.input = inputs
            n.output = [output]
            n.attribute = attributes
            return n
        }
        var w1 = values(Int(channels) * 9, seed: 1)
        if let (index, value) = weight, index < w1.count { w1[index] = value }
        var m = Onnx_ModelProto()
        m.irVersion = 7
        var opset = Onnx_OperatorSetIdProto()
        opset.version = 13
        m.opsetImport = [opset]
        m.graph.name = "tiny"
        m.graph.node = [
            node("Conv", ["x", "w1", "b1"], "c1", [attribute("kernel_shape", ints: [3, 3]), attribute("pads", ints: pads)]),
            node("Relu", ["c1"], "r1"),
            node("Conv", ["r1", "w2", "b2"], "c2", [attribute("kernel_shape", ints: [3, 3]), attribute("pads", ints: [1, 1, 1, 1])]),
            node("Relu", ["c2"], "r2"),
            node("GlobalAveragePool", ["r2"], "g"),
            node("Flatten", ["g"], "f"),
            node("Gemm", ["f", "wg", "bg"], "y", [attribute("transB", int: 1)]),
        ]
        m.graph.initializer = [
            initializer("w1", [channels, 1, 3, 3], w1),
            initializer("b1", [channels], values(Int(channels), seed: 2)),
            initializer("w2", [4, channels, 3, 3], values(4 * Int(channels) * 9, seed: 3)),
            initializer("b2", [4], values(4, seed: 4)),
            initializer("wg", [classes, 4], values(Int(classes) * 4, seed: 5)),
            initializer("bg", [classes], values(Int(classes), seed: 6)),
        ]
        m.graph.input = [valueInfo("x", [nil, 1, 8, 8])]
        m.graph.output = [valueInfo("y", [nil, classes])]
        return m
    }

    /// The ONNX cases; also writes the valid model and data every other class uses.
    func buildModelCases() throws {
        let good = try writeModel(Self.tinyModel(), "tiny.onnx")
        let calib = try writeNpy(Tensor(shape: [8, 1, 8, 8], data: Self.values(512, seed: 7)), "calib.npy")
        let out = path("out/model.rapq"), npyOut = path("out/y.npy")
        try FileManager.default.createDirectory(atPath: path("out"), withIntermediateDirectories: true)

        /// Each hostile model through inspect, run and quantize.
        func everyCommand(_ name: String, _ model: String, saying phrase: String? = nil) {
            add("onnx", "\(name) (inspect)", ["inspect", model], saying: phrase)
            add("onnx", "\(name) (run)", ["run", model, "-i", calib, "-o", npyOut], saying: phrase)
            add("onnx", "\(name) (quantize)", ["quantize", model, "--calib", calib, "--method", "pot-mse", "-o", out], saying: phrase)
        }
        everyCommand("Conv pads 2^30", try writeModel(Self.tinyModel(pads: [1 << 30, 1 << 30, 1 << 30, 1 << 30]), "pads30.onnx"), saying: "elements")
        everyCommand("Conv pads 2^16", try writeModel(Self.tinyModel(pads: [1 << 16, 1 << 16, 1 << 16, 1 << 16]), "pads16.onnx"), saying: "elements")
        everyCommand("Conv pads 2^62", try writeModel(Self.tinyModel(pads: [1 << 62, 0, 0, 0]), "pads62.onnx"), saying: "out of range")
        everyCommand("negative pads", try writeModel(Self.tinyModel(pads: [-1, 0, 0, 0]), "padsneg.onnx"), saying: "negative padding")
        everyCommand("zero output channels", try writeModel(Self.tinyModel(channels: 0), "zerochannels.onnx"))
        everyCommand("zero classes", try writeModel(Self.tinyModel(classes: 0), "zeroclasses.onnx"))
        everyCommand("NaN weight", try writeModel(Self.tinyModel(weight: (3, .nan)), "nanweight.onnx"), saying: "NaN or infinite weights")
        everyCommand("infinite weight", try writeModel(Self.tinyModel(weight: (5, -.infinity)), "infweight.onnx"), saying: "NaN or infinite weights")
        add("onnx", "weight 3e38 (run)", ["run", try writeModel(Self.tinyModel(weight: (0, 3e38)), "hugeweight.onnx"), "-i", calib, "-o", npyOut])
        for method in ["pot-mse", "naive-pot", "rtn"] {
            add("onnx", "weight 3e38 (quantize \(method))", ["quantize", path("hugeweight.onnx"), "--calib", calib, "--method", method, "-o", out])
        }
        for (attribute, values) in [("strides", [0, 1]), ("strides", [1 << 40, 1]), ("dilations", [0, 1]), ("dilations", [1 << 40, 1]),
                                    ("kernel_shape", [5, 5]), ("kernel_shape", [3]), ("group", [0]), ("group", [3])] as [(String, [Int64])] {
            var model = Self.tinyModel()
            if attribute == "group" {
                model.graph.node[0].attribute.append(Self.attribute("group", int: values[0]))
            } else {
                model.graph.node[0].attribute.removeAll { $0.name == attribute }
                model.graph.node[0].attribute.append(Self.attribute(attribute, ints: values))
            }
            let file = try writeModel(model, "attr-\(attribute)-\(values.map(String.init).joined(separator: "-")).onnx")
            add("onnx", "\(attribute) \(values) (inspect)", ["inspect", file])
            add("onnx", "\(attribute) \(values) (run)", ["run", file, "-i", calib, "-o", npyOut])
        }
        for (name, dims) in [("input dims 2^31", [nil, 1, 1 << 31, 1 << 31]), ("input dims negative", [nil, 1, -8, 8]), ("input rank 2", [nil, 64])] as [(String, [Int64?])] {
            var model = Self.tinyModel()
            model.graph.input = [Self.valueInfo("x", dims)]
            let file = try writeModel(model, "input-\(name.replacingOccurrences(of: " ", with: "-")).onnx")
            add("onnx", "\(name) (inspect)", ["inspect", file])
            add("onnx", "\(name) (run)", ["run", file, "-i", calib, "-o", npyOut])
        }
        var constantOutput = Self.tinyModel()
        constantOutput.graph.output = [Self.valueInfo("wg", [3, 4])]
        let constantFile = try writeModel(constantOutput, "constantoutput.onnx")
        add("onnx", "output is an initializer (run)", ["run", constantFile, "-i", calib, "-o", npyOut], saying: "is a constant stored in the file")
        add("onnx", "output is an initializer (eval)", ["eval", constantFile, "--data", calib], saying: "is a constant stored in the file")
        add("onnx", "output is an initializer (quantize)", ["quantize", constantFile, "--calib", calib, "--method", "pot-mse", "-o", out],
            saying: "is a constant stored in the file")
        var hugeAlpha = Self.tinyModel()
        hugeAlpha.graph.node[6].attribute.append(Self.attribute("alpha", float: 1e38))
        add("onnx", "Gemm alpha 1e38: logits overflow (quantize)", ["quantize", try writeModel(hugeAlpha, "gemmalpha.onnx"), "--calib", calib,
                                                                    "--method", "pot-mse", "-o", out], saying: "infinite values at 'y'")
        var noOpset = Self.tinyModel()
        noOpset.opsetImport = []
        everyCommand("no opset", try writeModel(noOpset, "noopset.onnx"), saying: "opset")
        var futureOpset = Self.tinyModel()
        futureOpset.opsetImport[0].version = 99
        add("onnx", "opset 99", ["inspect", try writeModel(futureOpset, "opset99.onnx")], saying: "opset")
        var badWeightSize = Self.tinyModel()
        badWeightSize.graph.initializer[0].dims = [4, 1, 3, 4]
        everyCommand("weight data shorter than dims", try writeModel(badWeightSize, "weightsize.onnx"))
        var hugeDims = Self.tinyModel()
        hugeDims.graph.initializer[0].dims = [1 << 40, 1 << 40, 1, 1]
        add("onnx", "initializer dims 2^80", ["inspect", try writeModel(hugeDims, "hugedims.onnx")], saying: "2^31")
        var unknownOp = Self.tinyModel()
        unknownOp.graph.node[1].opType = "Softplus"
        add("onnx", "unsupported operator", ["inspect", try writeModel(unknownOp, "unknownop.onnx")], saying: "Softplus")
        var cycle = Self.tinyModel()
        cycle.graph.node[0].input[0] = "r1"
        add("onnx", "cycle", ["inspect", try writeModel(cycle, "cycle.onnx")])

        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        everyCommand("empty file", try write(Data(), "empty.onnx"), saying: "empty")
        everyCommand("truncated file", try write(bytes.prefix(bytes.count / 2), "truncated.onnx"))
        everyCommand("text file", try write(Data("not a model\n".utf8), "text.onnx"))
        everyCommand("a folder", path("out"), saying: "folder")
        XCTAssertEqual(mkfifo(path("fifo.onnx"), 0o600), 0)
        everyCommand("a FIFO", path("fifo.onnx"), saying: "FIFO")
        add("onnx", "a character device", ["inspect", "/dev/zero"], saying: "character device")
        add("onnx", "missing file", ["inspect", path("absent.onnx")], saying: "no such file")

        // External data: a FIFO, a folder, a missing file, a path outside the model's folder.
        for (name, location) in [("FIFO", "pipe.bin"), ("folder", "out"), ("missing", "absent.bin"), ("outside", "../x.bin")] {
            var model = Self.tinyModel()
            model.graph.initializer[1].floatData = []
            model.graph.initializer[1].dataLocation = .external
            var entry = Onnx_StringStringEntryProto()
            entry.key = "location"
            entry.value = location
            model.graph.initializer[1].externalData = [entry]
            add("external-data", "external data in a \(name)", ["inspect", try writeModel(model, "external-\(name).onnx")])
            add("external-data", "external data in a \(name) (run)", ["run", path("external-\(name).onnx"), "-i", calib, "-o", npyOut])
        }
        XCTAssertEqual(mkfifo(path("pipe.bin"), 0o600), 0)
    }

    // MARK: - .npy arrays

    func buildNumpyCases() throws {
        let model = path("tiny.onnx"), out = path("out/model.rapq"), npyOut = path("out/y.npy")
        let valid = NumpyFile.encode(Tensor(shape: [8, 1, 8, 8], data: Self.values(512, seed: 7)))
        func header(_ text: String, payload: Int) -> Data {
            var h = "{'descr': \(text), }"
            h += String(repeating: " ", count: (64 - (10 + h.utf8.count + 1) % 64) % 64) + "\n"
            var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.utf8.count & 0xff), UInt8(h.utf8.count >> 8)])
            data.append(contentsOf: Array(h.utf8))
            data.append(Data(count: payload))
            return data
        }
        var nan = Tensor(shape: [8, 1, 8, 8], data: Self.values(512, seed: 7))
        nan.data[9] = .nan
        var huge = Tensor(shape: [8, 1, 8, 8], data: Self.values(512, seed: 7))
        huge.data[0] = 3e38
        huge.data[1] = -3e38
        XCTAssertEqual(mkfifo(path("fifo.npy"), 0o600), 0)
        let files: [(String, String, String?)] = [
            ("empty file", try write(Data(), "empty.npy"), "empty"),
            ("truncated payload", try write(valid.prefix(valid.count - 5), "truncated.npy"), "bytes"),
            ("truncated header", try write(valid.prefix(9), "shortheader.npy"), nil),
            ("not numpy", try write(Data("hello".utf8), "text.npy"), "not a valid NumPy"),
            ("shape too large", try write(header("'<f4', 'fortran_order': False, 'shape': (2147483647, 2147483647, 8)", payload: 16), "hugeshape.npy"), nil),
            ("negative dimension", try write(header("'<f4', 'fortran_order': False, 'shape': (-1, 1, 8, 8)", payload: 16), "negative.npy"), nil),
            ("Fortran order", try write(header("'<f4', 'fortran_order': True, 'shape': (1, 1, 8, 8)", payload: 256), "fortran.npy"), "Fortran"),
            ("complex type", try write(header("'<c8', 'fortran_order': False, 'shape': (1, 1, 8, 8)", payload: 512), "complex.npy"), "c8"),
            ("big-endian", try write(header("'>f4', 'fortran_order': False, 'shape': (1, 1, 8, 8)", payload: 256), "bigendian.npy"), nil),
            ("no shape", try write(header("'<f4', 'fortran_order': False", payload: 4), "noshape.npy"), nil),
            ("zero samples", try writeNpy(Tensor(shape: [0, 1, 8, 8], data: []), "zero.npy"), "0 samples"),
            ("wrong sample shape", try writeNpy(Tensor(shape: [2, 1, 8, 7], data: Self.values(112, seed: 8)), "wrongshape.npy"), nil),
            ("wrong rank", try writeNpy(Tensor(shape: [64], data: Self.values(64, seed: 9)), "rank1.npy"), nil),
            ("scalar", try write(header("'<f4', 'fortran_order': False, 'shape': ()", payload: 4), "scalar.npy"), nil),
            ("NaN value", try writeNpy(nan, "nan.npy"), "NaN"),
            ("a folder", path("out"), "folder"),
            ("a FIFO", path("fifo.npy"), "FIFO"),
            ("missing", path("absent.npy"), "no such file"),
        ]
        for (name, file, phrase) in files {
            add("npy", "\(name) (run -i)", ["run", model, "-i", file, "-o", npyOut], saying: phrase)
            add("npy", "\(name) (quantize --calib)", ["quantize", model, "--calib", file, "--method", "pot-mse", "-o", out], saying: phrase)
            add("npy", "\(name) (eval --data)", ["eval", model, "--data", file], saying: phrase)
        }
        let huger = try writeNpy(huge, "huge.npy")
        add("npy", "values 3e38 (quantize pot-mse)", ["quantize", model, "--calib", huger, "--method", "pot-mse", "-o", out])
        add("npy", "values 3e38 (run)", ["run", model, "-i", huger, "-o", npyOut])
        add("npy", "values 3e38 (eval)", ["eval", model, "--data", huger])
        // Values near 1e-36 give scales no .rapq file may hold: refused when writing, not when reading back.
        let tiny = try writeNpy(Tensor(shape: [8, 1, 8, 8], data: Self.values(512, seed: 7).map { $0 * 1e-36 }), "tiny.npy")
        for method in ["pot-mse", "rtn"] {
            add("npy", "values near 1e-36 (quantize \(method))", ["quantize", model, "--calib", tiny, "--method", method, "-o", out], saying: "cannot be saved")
        }

        // Labels.
        let data = path("calib.npy")
        let labelCases: [(String, Data, String)] = [
            ("label above the classes", NumpyFile.encode(int64: [0, 1, 2, 3, 0, 1, 2, 0], shape: [8]), "not a class"),
            ("negative label", NumpyFile.encode(int64: [0, 1, 2, -1, 0, 1, 2, 0], shape: [8]), "not a class"),
            ("label 2^62", NumpyFile.encode(int64: [0, 1, 2, 1 << 62, 0, 1, 2, 0], shape: [8]), "not a class"),
            ("too few labels", NumpyFile.encode(int64: [0, 1], shape: [2]), "--labels has 2 entries"),
            ("fractional labels", NumpyFile.encode(Tensor(shape: [8], data: [0.5, 1, 2, 0, 1, 2, 0, 1])), "whole number"),
            ("empty labels file", Data(), "empty"),
        ]
        for (name, bytes, phrase) in labelCases {
            add("labels", name, ["eval", model, "--data", data, "--labels", try write(bytes, "labels-\(name.replacingOccurrences(of: " ", with: "-")).npy")], saying: phrase)
        }
        add("labels", "labels are a FIFO", ["eval", model, "--data", data, "--labels", path("fifo.npy")], saying: "FIFO")
    }

    // MARK: - .rapq files

    /// The .rapq file with its manifest changed by `edit` and both checksums recomputed, so that only the
    /// edited value is wrong.
    static func editedRAPQ(_ bytes: Data, _ edit: (inout [String: Any]) -> Void) throws -> Data {
        let b = [UInt8](bytes)
        let length = (12..<20).reduce(0) { $0 | Int(b[$1]) << (8 * ($1 - 12)) }
        var manifest = try JSONSerialization.jsonObject(with: Data(b[24..<24 + length])) as! [String: Any]
        let payload = Data(b[(24 + length)...])
        edit(&manifest)
        let json = try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys])
        var out = Data(b[0..<12])
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: CRC32.checksum(json).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(payload)
        return out
    }

    /// Edits the first element of `key` in the stored layer or activation at `index`.
    static func editQuantizer(_ manifest: inout [String: Any], list: String, index: Int, _ edit: (inout [String: Any]) -> Void) {
        var items = manifest[list] as! [[String: Any]]
        var item = items[index]
        var quantizer = (list == "layers" ? item["weight"] : item["quantizer"]) as! [String: Any]
        edit(&quantizer)
        item[list == "layers" ? "weight" : "quantizer"] = quantizer
        items[index] = item
        manifest[list] = items
    }

    func buildRAPQCases() throws {
        let graph = try ONNXImporter.load(contentsOf: folder.appendingPathComponent("tiny.onnx"))
        let calibration = try NumpyFile.readTensor(contentsOf: folder.appendingPathComponent("calib.npy"))
        let network = try quantize(model: graph, calibration: calibration,
                                   configuration: QuantizationConfiguration(method: .potMse, weightBits: 2, activationBits: 4))
        let bytes = try RAPQFile.encode(network)
        _ = try write(bytes, "good.rapq")
        let data = path("calib.npy")
        let manifest = try JSONSerialization.jsonObject(with: Data(bytes[24..<24 + (12..<20).reduce(0) { $0 | Int(bytes[$1]) << (8 * ($1 - 12)) }])) as! [String: Any]
        let layers = manifest["layers"] as! [[String: Any]]
        let middle = layers.firstIndex { ($0["node"] as? String) == "c2" }!

        var edits: [(String, (inout [String: Any]) -> Void)] = []
        func layerEdit(_ name: String, index: Int = middle, _ edit: @escaping (inout [String: Any]) -> Void) {
            edits.append((name, { m in Self.editQuantizer(&m, list: "layers", index: index, edit) }))
        }
        func activationEdit(_ name: String, _ edit: @escaping (inout [String: Any]) -> Void) {
            edits.append((name, { m in Self.editQuantizer(&m, list: "activations", index: 0, edit) }))
        }
        func biasEdit(_ name: String, _ bits: UInt32) {
            edits.append((name, { m in
                var items = m["layers"] as! [[String: Any]]
                var biases = items[middle]["biasBits"] as! [UInt32]
                biases[0] = bits
                items[middle]["biasBits"] = biases
                m["layers"] = items
            }))
        }
        layerEdit("weight exponent 127") { q in var e = q["exponents"] as! [Int]; e[0] = 127; q["exponents"] = e }
        layerEdit("weight exponent -126") { q in var e = q["exponents"] as! [Int]; e[0] = -126; q["exponents"] = e }
        layerEdit("weight exponent 1000") { q in var e = q["exponents"] as! [Int]; e[0] = 1000; q["exponents"] = e }
        layerEdit("weight zero point outside the grid") { q in var z = q["zeroPoints"] as! [Int]; z[0] = 1000; q["zeroPoints"] = z }
        layerEdit("weight zero point -1000") { q in var z = q["zeroPoints"] as! [Int]; z[0] = -1000; q["zeroPoints"] = z }
        layerEdit("weight grid of 0 bits") { q in var g = q["grid"] as! [String: Any]; g["bits"] = 0; q["grid"] = g }
        layerEdit("weight grid wider than the declared bits") { q in var g = q["grid"] as! [String: Any]; g["bits"] = 6; q["grid"] = g }
        layerEdit("NaN weight scale") { q in
            let n = (q["exponents"] as! [Int]).count
            q["exponents"] = nil
            q["scaleBits"] = [UInt32](repeating: Float.nan.bitPattern, count: n)
        }
        layerEdit("zero weight scale") { q in
            let n = (q["exponents"] as! [Int]).count
            q["exponents"] = nil
            q["scaleBits"] = [UInt32](repeating: 0, count: n)
        }
        layerEdit("negative weight scale") { q in
            let n = (q["exponents"] as! [Int]).count
            q["exponents"] = nil
            q["scaleBits"] = [UInt32](repeating: Float(-0.25).bitPattern, count: n)
        }
        layerEdit("NaN weight zero point") { q in
            let n = (q["zeroPoints"] as! [Int]).count
            q["zeroPoints"] = nil
            q["zeroPointBits"] = [UInt32](repeating: Float.nan.bitPattern, count: n)
        }
        activationEdit("activation exponent 127") { q in q["exponents"] = [127] }
        activationEdit("activation exponent -126") { q in q["exponents"] = [-126] }
        activationEdit("activation zero point outside the grid") { q in q["zeroPoints"] = [-5] }
        activationEdit("activation grid of 16 bits") { q in var g = q["grid"] as! [String: Any]; g["bits"] = 16; q["grid"] = g }
        biasEdit("NaN bias", Float.nan.bitPattern)
        biasEdit("infinite bias", Float.infinity.bitPattern)
        biasEdit("bias 3e38", Float(3e38).bitPattern)
        edits.append(("manifest claims 1-bit weights", { m in var b = m["bits"] as! [String: Any]; b["weights"] = 1; m["bits"] = b }))
        edits.append(("manifest claims 0-bit activations", { m in var b = m["bits"] as! [String: Any]; b["activations"] = 0; m["bits"] = b }))
        edits.append(("weight shape that disagrees with the kernel", { m in
            var items = m["layers"] as! [[String: Any]]
            items[middle]["weightShape"] = [4, 4, 1, 9]
            m["layers"] = items
        }))
        edits.append(("weight shape with another channel count", { m in
            var items = m["layers"] as! [[String: Any]]
            items[middle]["weightShape"] = [2, 8, 3, 3]
            m["layers"] = items
        }))
        edits.append(("layer listed twice", { m in var items = m["layers"] as! [[String: Any]]; items.append(items[0]); m["layers"] = items }))
        edits.append(("layer naming no node", { m in var items = m["layers"] as! [[String: Any]]; items[0]["node"] = "nowhere"; m["layers"] = items }))
        edits.append(("codes outside the payload", { m in
            var items = m["layers"] as! [[String: Any]]
            items[0]["codes"] = ["offset": 1 << 40, "length": 9]
            m["layers"] = items
        }))

        for (name, edit) in edits {
            let file = try write(try Self.editedRAPQ(bytes, edit), "rapq-\(name.replacingOccurrences(of: " ", with: "-")).rapq")
            add("rapq", "\(name) (verify)", ["verify", file])
            add("rapq", "\(name) (verify --data)", ["verify", file, "--data", data])
            add("rapq", "\(name) (eval)", ["eval", file, "--data", data])
            add("rapq", "\(name) (eval --integer)", ["eval", file, "--integer", "--data", data])
        }
        var flipped = bytes
        flipped[flipped.count - 3] ^= 0x40
        XCTAssertEqual(mkfifo(path("fifo.rapq"), 0o600), 0)
        try FileManager.default.createDirectory(atPath: path("folder.rapq"), withIntermediateDirectories: true)
        var version = bytes
        version[8] = 9
        let files: [(String, String)] = [
            ("empty", try write(Data(), "empty.rapq")), ("truncated", try write(bytes.prefix(bytes.count / 2), "truncated.rapq")),
            ("payload bit flipped", try write(flipped, "flipped.rapq")), ("unknown version", try write(version, "version.rapq")),
            ("magic only", try write(Data(RAPQFile.magic), "magic.rapq")), ("text", try write(Data("rapq".utf8), "text.rapq")),
            ("FIFO", path("fifo.rapq")), ("folder", path("folder.rapq")),
        ]
        for (name, file) in files {
            add("rapq", "\(name) (verify)", ["verify", file])
            add("rapq", "\(name) (eval --integer)", ["eval", file, "--integer", "--data", data])
        }
    }

    // MARK: - Checkpoints

    /// A state.json with `edit` applied and its checksum recomputed (the format `CheckpointStore` documents).
    static func state(_ original: [String: Any], checksum: Bool = true, _ edit: (inout [String: Any]) -> Void) throws -> Data {
        var state = original
        edit(&state)
        if checksum {
            let position = state["position"] as? [String: Any] ?? [:]
            let text = "\(state["format"] ?? "")|\(state["fingerprint"] ?? "")|\(position["phase"] ?? "")|\(position["completedUnits"] ?? "")|\(state["networkCRC32"] ?? "")"
            state["stateCRC32"] = CRC32.checksum(Data(text.utf8))
        }
        return try JSONSerialization.data(withJSONObject: state, options: [.sortedKeys])
    }

    func buildCheckpointCases() throws {
        let model = path("tiny.onnx"), calib = path("calib.npy")
        let arguments = ["quantize", model, "--calib", calib, "--method", "rapq", "--iters", "2", "--batch-size", "4"]
        // A real checkpoint, written by the binary.
        let made = Process()
        made.executableURL = CommandLineTests.binary
        made.arguments = arguments + ["--checkpoint-dir", path("checkpoint"), "-o", path("checkpointed.rapq")]
        made.standardOutput = FileHandle.nullDevice
        made.standardError = FileHandle.nullDevice
        try made.run()
        made.waitUntilExit()
        XCTAssertEqual(made.terminationStatus, 0, "writing the reference checkpoint failed")
        try FileManager.default.removeItem(atPath: path("checkpointed.rapq"))
        let stateData = try Data(contentsOf: URL(fileURLWithPath: path("checkpoint/state.json")))
        let network = try Data(contentsOf: URL(fileURLWithPath: path("checkpoint/network.rapq")))
        let original = try JSONSerialization.jsonObject(with: stateData) as! [String: Any]

        func position(_ phase: Any, _ units: Any) -> (inout [String: Any]) -> Void {
            { $0["position"] = ["phase": phase, "completedUnits": units] }
        }
        var states: [(String, Data, String?)] = [
            ("completedUnits 99", try Self.state(original, position("weights", 99)), "completed units"),
            ("completedUnits -1", try Self.state(original, position("weights", -1)), "completed units"),
            ("unknown phase", try Self.state(original, position("bias", 0)), "unknown phase"),
            ("phase of another type", try Self.state(original, position(7, 0)), nil),
            ("edited without the checksum", try Self.state(original, checksum: false, position("weights", 1)), "checksum"),
            ("another format", try Self.state(original) { $0["format"] = 1 }, "format"),
            ("another fingerprint", try Self.state(original) { $0["fingerprint"] = "0" }, "another model"),
            ("network checksum wrong", try Self.state(original) { $0["networkCRC32"] = 1 }, "does not match"),
            ("no position", try Self.state(original, checksum: false) { $0["position"] = nil }, nil),
        ]
        // A network of another bit width, with every checksum made to match.
        let graph = try ONNXImporter.load(contentsOf: URL(fileURLWithPath: model))
        let other = try RAPQFile.encode(try quantize(model: graph, calibration: NumpyFile.readTensor(contentsOf: URL(fileURLWithPath: calib)),
                                                     configuration: QuantizationConfiguration(method: .potMse, weightBits: 3, activationBits: 4)))
        _ = try write(other, "checkpoint-other-network/network.rapq")
        _ = try write(try Self.state(original) { $0["networkCRC32"] = CRC32.checksum(other) }, "checkpoint-other-network/state.json")
        add("checkpoint", "network of another bit width", arguments + ["--resume", path("checkpoint-other-network"), "-o", path("out/resumed.rapq")],
            saying: "does not have this run's layers")
        states.append(("not JSON", Data("{".utf8), "not readable"))
        states.append(("empty state", Data(), "not readable"))
        for (name, state, phrase) in states {
            let dir = "checkpoint-\(name.replacingOccurrences(of: " ", with: "-"))"
            _ = try write(network, "\(dir)/network.rapq")
            _ = try write(state, "\(dir)/state.json")
            add("checkpoint", name, arguments + ["--resume", path(dir), "-o", path("out/resumed.rapq")], saying: phrase)
        }
        // Broken files around a valid state.
        _ = try write(stateData, "checkpoint-truncated-network/state.json")
        _ = try write(network.prefix(network.count / 2), "checkpoint-truncated-network/network.rapq")
        _ = try write(stateData, "checkpoint-no-network/state.json")
        _ = try write(network, "checkpoint-fifo-state/network.rapq")
        XCTAssertEqual(mkfifo(path("checkpoint-fifo-state/state.json"), 0o600), 0)
        _ = try write(network, "checkpoint-folder-state/network.rapq")
        try FileManager.default.createDirectory(atPath: path("checkpoint-folder-state/state.json"), withIntermediateDirectories: true)
        _ = try write(stateData, "checkpoint-fifo-network/state.json")
        XCTAssertEqual(mkfifo(path("checkpoint-fifo-network/network.rapq"), 0o600), 0)
        for name in ["truncated-network", "no-network", "fifo-state", "folder-state", "fifo-network"] {
            add("checkpoint", name, arguments + ["--resume", path("checkpoint-\(name)"), "-o", path("out/resumed.rapq")])
        }
        add("checkpoint", "resume a missing folder", arguments + ["--resume", path("no-such-checkpoint"), "-o", path("out/resumed.rapq")], saying: "no checkpoint")
        add("checkpoint", "resume a file", arguments + ["--resume", calib, "-o", path("out/resumed.rapq")])
        add("checkpoint", "checkpoint dir is a file", arguments + ["--checkpoint-dir", calib, "-o", path("out/resumed.rapq")])
        add("checkpoint", "checkpoint dir holds the calibration", arguments + ["--checkpoint-dir", folder.path, "-o", path("out/resumed.rapq")], saying: "holds")
    }

    // MARK: - Options and outputs

    func buildOptionCases() {
        let model = path("tiny.onnx"), calib = path("calib.npy"), rapq = path("good.rapq"), out = path("out/o.rapq")
        let options: [(String, [String], String?)] = [
            ("inspect --batch 2^40", ["inspect", model, "--batch", "\(1 << 40)"], "elements"),
            ("inspect --batch 0", ["inspect", model, "--batch", "0"], "--batch"),
            ("inspect --batch -3", ["inspect", model, "--batch", "-3"], nil),
            ("run --batch 0", ["run", model, "-i", calib, "-o", path("out/y.npy"), "--batch", "0"], "--batch"),
            ("eval --batch 0", ["eval", model, "--data", calib, "--batch", "0"], "--batch"),
            ("verify --batch 0", ["verify", rapq, "--data", calib, "--batch", "0"], "--batch"),
            ("verify --batch -1", ["verify", rapq, "--data", calib, "--batch", "-1"], nil),
            ("verify an ONNX model", ["verify", model], ".rapq"),
            ("eval --integer on ONNX", ["eval", model, "--integer", "--data", calib], "--integer"),
            ("quantize --wbits 0", ["quantize", model, "--calib", calib, "--wbits", "0", "-o", out], "--wbits"),
            ("quantize --wbits 99", ["quantize", model, "--calib", calib, "--wbits", "99", "-o", out], "--wbits"),
            ("quantize --abits -1", ["quantize", model, "--calib", calib, "--abits", "-1", "-o", out], nil),
            ("quantize --activation-samples 0", ["quantize", model, "--calib", calib, "--activation-samples", "0", "-o", out], nil),
            ("quantize --iters 0", ["quantize", model, "--calib", calib, "--iters", "0", "-o", out], "--iters"),
            ("quantize --batch-size 0", ["quantize", model, "--calib", calib, "--batch-size", "0", "-o", out], "--batch-size"),
            ("quantize --max-memory nonsense", ["quantize", model, "--calib", calib, "--max-memory", "lots", "-o", out], "--max-memory"),
            ("quantize --cache-dir a file", ["quantize", model, "--calib", calib, "--method", "rapq", "--iters", "2", "--batch-size", "4",
                                             "--cache-dir", calib, "-o", out], "not a folder"),
            ("quantize -o an existing folder", ["quantize", model, "--calib", calib, "--method", "pot-mse", "-o", path("out")], nil),
            ("quantize -o in a missing folder", ["quantize", model, "--calib", calib, "--method", "pot-mse", "-o", path("absent/o.rapq")], "does not exist"),
            ("quantize -o = the model", ["quantize", model, "--calib", calib, "--method", "pot-mse", "-o", model], "same file"),
            ("quantize -o = the calibration", ["quantize", model, "--calib", calib, "--method", "pot-mse", "-o", calib], "same file"),
            ("run -o = -i", ["run", model, "-i", calib, "-o", calib], "same file"),
            ("run -o = the model", ["run", model, "-i", calib, "-o", model], "same file"),
            ("eval --save-logits = --data", ["eval", model, "--data", calib, "--save-logits", calib], "same file"),
            ("eval --save-logits = the model", ["eval", model, "--data", calib, "--save-logits", model], "same file"),
            ("eval --save-codes holds the data", ["eval", rapq, "--integer", "--data", calib, "--save-codes", folder.path], "holds"),
            ("eval --save-codes /dev/null", ["eval", rapq, "--integer", "--data", calib, "--save-codes", "/dev/null"], "must name a folder"),
            ("demo --output-dir a file", ["demo", "--output-dir", calib], "must name a folder"),
            ("quantize pot-mse --resume", ["quantize", model, "--calib", calib, "--method", "pot-mse", "--resume", path("ck"), "-o", out], "nothing to resume"),
            ("quantize -o a 240-byte name", ["quantize", model, "--calib", calib, "--method", "pot-mse", "-o", path("out/" + String(repeating: "m", count: 234) + ".rapq")],
             "use a shorter name"),
            ("eval --save-logits = --data through ./", ["eval", model, "--data", calib, "--save-logits", folder.path + "/./calib.npy"], "same file"),
        ]
        for (name, arguments, phrase) in options { add("options", name, arguments, saying: phrase) }
        // The row list `run` writes next to its output for images (OUTPUT.txt) must not replace an input.
        try? FileManager.default.copyItem(atPath: model, toPath: path("model.txt"))
        try? FileManager.default.createDirectory(atPath: path("ck"), withIntermediateDirectories: true)
        add("options", "run's image row list = the model", ["run", path("model.txt"), "-i", path("out"), "-o", path("model.npy")], saying: "same file as the model")
        add("options", "run -o .txt with images", ["run", model, "-i", path("out"), "-o", path("out/rows.txt")], saying: "name the output .npy")
        add("options", "quantize -o inside the checkpoint folder", ["quantize", model, "--calib", calib, "--method", "rapq", "--iters", "2",
                                                                     "--checkpoint-dir", path("ck"), "-o", path("ck/state.json"), "--format", "rapq"],
            saying: "inside the checkpoint folder")
        // Links to inputs: symbolic and hard.
        symlink(calib, path("link-to-calib.npy"))
        link(model, path("hardlink-to-model.onnx"))
        add("options", "run -o a symlink to -i", ["run", model, "-i", calib, "-o", path("link-to-calib.npy")], saying: "same file")
        add("options", "quantize -o a hard link to the model", ["quantize", model, "--calib", calib, "--method", "pot-mse", "-o", path("hardlink-to-model.onnx")], saying: "same file")
        add("options", "eval --save-logits a symlink to --data", ["eval", model, "--data", calib, "--save-logits", path("link-to-calib.npy")], saying: "same file")
    }
}
