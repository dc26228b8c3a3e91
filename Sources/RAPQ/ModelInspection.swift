import Foundation

/// What `rapq inspect` reports about a model: interface, operator counts, parameters, FLOPs per layer.
public struct ModelInspection: Sendable {
    /// The imported graph.
    public let graph: Graph
    /// Every tensor's shape at the inspected batch size.
    public let shapes: [String: [Int]]
    /// Cost of each node, in graph order.
    public let costs: [(node: Node, cost: LayerCost)]
    /// The batch size used for shapes and FLOPs.
    public let batch: Int

    /// Imports the model at `url` and computes its shapes and costs at `batch`.
    public init(contentsOf url: URL, batch: Int) throws {
        let graph = try ONNXImporter.load(contentsOf: url)
        let shapes = try inferShapes(of: graph, batch: batch)
        self.graph = graph
        self.shapes = shapes
        costs = graph.nodes.map { ($0, LayerCost(node: $0, graph: graph, shapes: shapes)) }
        self.batch = batch
    }

    /// FLOPs of the whole graph at `batch` (saturating at `Int.max`).
    public var totalFLOPs: Int {
        costs.map(\.cost.flops).reduce(0) { $0.addingReportingOverflow($1).overflow ? Int.max : $0 + $1 }
    }

    /// A human-readable report; `showLayers` adds one line per node.
    public func text(showLayers: Bool) -> String {
        func dims(_ d: [Int?]) -> String { "[" + d.map { $0.map(String.init) ?? "N" }.joined(separator: ", ") + "]" }
        var lines = ["model: \(graph.name)"]
        for input in graph.inputs { lines.append("input  \(input.name) \(dims(input.dimensions))") }
        for output in graph.outputs { lines.append("output \(output.name) \(dims(output.dimensions))") }
        var counts: [String: Int] = [:]
        for node in graph.nodes { counts[node.op.onnxName, default: 0] += 1 }
        lines.append("operators: " + counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        let parameters = graph.initializers.values.map(\.count).reduce(0, +)
        let flops = totalFLOPs
        lines.append("parameters: \(parameters) (\(String(format: "%.2f", Double(parameters) * 4 / 1_048_576)) MiB as FP32)")
        lines.append("FLOPs at batch \(batch): \(String(format: "%.3f", Double(flops) / 1e9)) G (2 per multiply-accumulate)")
        lines.append("unsupported nodes: none (every node imported)")
        if showLayers {
            lines.append("")
            lines.append("layer".padding(toLength: 40, withPad: " ", startingAt: 0) + "op".padding(toLength: 20, withPad: " ", startingAt: 0)
                         + "output".padding(toLength: 22, withPad: " ", startingAt: 0) + "params".padding(toLength: 10, withPad: " ", startingAt: 0) + "MFLOPs")
            for (node, cost) in costs {
                let shape = node.outputs.first.flatMap { shapes[$0] }.map { $0.map(String.init).joined(separator: "x") } ?? "?"
                lines.append(String(node.name.prefix(39)).padding(toLength: 40, withPad: " ", startingAt: 0)
                             + node.op.onnxName.padding(toLength: 20, withPad: " ", startingAt: 0)
                             + shape.padding(toLength: 22, withPad: " ", startingAt: 0)
                             + String(cost.parameters).padding(toLength: 10, withPad: " ", startingAt: 0)
                             + String(format: "%.2f", Double(cost.flops) / 1e6))
            }
        }
        return lines.joined(separator: "\n")
    }
}
