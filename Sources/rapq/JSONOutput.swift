import Foundation
import RAPQ

/// `--json`: the facts a command reports, as one JSON document on standard output (schema: docs/json.md).
/// Keys are snake_case and sorted, so the same facts always give the same bytes; progress and notes go to
/// standard error instead, and errors stay on standard error with the usual exit status.
enum JSONOutput {
    /// Where the document goes: the process's standard output, also after `reserveStandardOutput()`.
    private static var documentDescriptor = STDOUT_FILENO

    /// Keeps standard output for the document alone: everything else the command prints (progress, notes
    /// on skipped images, summaries) goes to standard error from here on.
    static func reserveStandardOutput() {
        fflush(stdout)
        let saved = dup(STDOUT_FILENO)
        guard saved >= 0 else { return }
        guard dup2(STDERR_FILENO, STDOUT_FILENO) >= 0 else { close(saved); return }
        documentDescriptor = saved
    }

    static func write<T: Encodable>(_ document: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        var data = try encoder.encode(document)
        data.append(UInt8(ascii: "\n"))
        fflush(stdout)
        FileHandle(fileDescriptor: documentDescriptor, closeOnDealloc: false).write(data)
    }

    /// A tensor of the model's interface; `nil` entries are free dimensions (the batch).
    struct TensorInfo: Encodable {
        var name: String
        var shape: [Int?]
    }

    /// An operator the importer cannot read, with the nodes that use it.
    struct UnsupportedOperatorInfo: Encodable {
        var op: String
        var count: Int
        var nodes: [String]
    }

    /// `rapq inspect --json`.
    struct Inspection: Encodable {
        struct Layer: Encodable {
            var name: String
            var op: String
            var outputShape: [Int]?
            var parameters: Int
            var flops: Int
        }

        var command = "inspect"
        var model: String
        var supported: Bool
        /// Every operator the importer cannot read; empty when `supported`.
        var unsupported: [UnsupportedOperatorInfo]
        var batch: Int
        var inputs: [TensorInfo]?
        var outputs: [TensorInfo]?
        var operators: [String: Int]?
        var parameters: Int?
        var flops: Int?
        var layers: [Layer]?

        init(model: String, inspection: ModelInspection) {
            self.model = model
            supported = true
            unsupported = []
            batch = inspection.batch
            let graph = inspection.graph
            inputs = graph.inputs.map { TensorInfo(name: $0.name, shape: $0.dimensions) }
            outputs = graph.outputs.map { TensorInfo(name: $0.name, shape: $0.dimensions) }
            operators = Dictionary(graph.nodes.map { ($0.op.onnxName, 1) }, uniquingKeysWith: +)
            parameters = graph.initializers.values.map(\.count).reduce(0, +)
            flops = inspection.totalFLOPs
            layers = inspection.costs.map { node, cost in
                Layer(name: node.name, op: node.op.onnxName, outputShape: node.outputs.first.flatMap { inspection.shapes[$0] },
                      parameters: cost.parameters, flops: cost.flops)
            }
        }

        init(model: String, batch: Int, unsupported: [UnsupportedOperator]) {
            self.model = model
            supported = false
            self.batch = batch
            self.unsupported = unsupported.map { UnsupportedOperatorInfo(op: $0.op, count: $0.nodes.count, nodes: $0.nodes) }
        }
    }

    /// `rapq eval --json`.
    struct Evaluation: Encodable {
        var command = "eval"
        var model: String
        /// "float" (an ONNX model), "simulation" or "integer" (a .rapq model).
        var engine: String
        var metrics: ClassificationMetrics
    }

    /// `rapq verify --json`.
    struct Verification: Encodable {
        var command = "verify"
        var model: String
        var verified: Bool
        /// Whether the integer engine ran against the simulation (only with --data).
        var integerEngineChecked: Bool
        /// Whether every node has an integer kernel (absent when not established: no --data).
        var integerOnly: Bool?
        /// Nodes the integer engine ran in Float (hybrid models).
        var floatNodes: [String]
        var checks: [VerificationCheck]
    }

    /// `rapq quantize --json`.
    struct Quantization: Encodable {
        var command = "quantize"
        var output: String
        var format: String
        var method: String
        var weightBits: Int
        var activationBits: Int
        var firstLastBits: Int
        var seconds: Double
        /// For power-of-two methods: whether every node has an integer kernel (`nil` for float-scale methods).
        var integerOnly: Bool?
        /// Nodes that run in Float between quantized tensors (hybrid models).
        var floatNodes: [String]
        /// A Float step applied to the logits (a Softmax at the output), if any.
        var floatOutputStep: String?
        /// Why the integer engine cannot run the model, when it cannot.
        var integerEngineError: String?
        /// For power-of-two methods: "passed", "failed" or "static checks passed; integer engine not run".
        var selfCheck: String?
        /// The self-check's failed checks, "name: detail".
        var selfCheckFailures: [String] = []
    }
}
