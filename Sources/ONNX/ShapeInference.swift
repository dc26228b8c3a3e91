import Foundation
import Graph
import TensorKernels

/// The shape of every tensor of `graph` (inputs, initializers, node outputs) for a batch of `batch` items.
///
/// Symbolic or unknown input dimensions (`nil` in `ValueInfo.dimensions`) are replaced by `batch`. The
/// rules are those the executor applies, checked once for the whole graph, so a model whose shapes do not
/// fit (a convolution's channel count, Gemm's inner dimension, a broadcast, a reshape's element count) is
/// reported before anything runs.
///
/// Every shape is checked against `ShapeLimits.maximumElements` with overflow-checked products, and a node
/// whose output would be empty (a Conv, Gemm or MatMul with zero channels, classes or positions) is refused, so nothing downstream
/// allocates without bound or divides by zero.
public func inferShapes(of graph: Graph, batch: Int) throws -> [String: [Int]] {
    guard batch > 0 else { throw ShapeInferenceError.invalidBatch(batch) }
    var inputs: [String: [Int]] = [:]
    for input in graph.inputs { inputs[input.name] = input.dimensions.map { $0 ?? batch } }
    return try inferShapes(of: graph, inputShapes: inputs)
}

/// The shape of every tensor of `graph` when its inputs have the given shapes (with the checks of
/// `inferShapes(of:batch:)`); a graph input missing from `inputShapes` is an unknown tensor.
public func inferShapes(of graph: Graph, inputShapes: [String: [Int]]) throws -> [String: [Int]] {
    var shapes: [String: [Int]] = [:]
    for (name, tensor) in graph.initializers { shapes[name] = tensor.shape }
    for input in graph.inputs {
        guard let shape = inputShapes[input.name] else { continue }
        try ShapeLimits.check(shape, tensor: input.name)
        shapes[input.name] = shape
    }
    for node in graph.nodes {
        let operands = try node.inputs.map { name -> [Int]? in
            if name.isEmpty { return nil }
            guard let shape = shapes[name] else { throw ShapeInferenceError.unknownTensor(node: node.name, tensor: name) }
            return shape
        }
        let output = try outputShape(of: node, operands: operands)
        let count = try ShapeLimits.check(output, tensor: node.outputs.first ?? node.name)
        // Other operators may yield empty tensors (ONNX allows them); a layer without outputs is degenerate.
        guard count > 0 || !producesLayerOutput(node.op) else {
            throw ShapeInferenceError.inconsistentShapes(node: node.name, op: node.op.onnxName,
                                                         detail: "its output would be empty (shape \(output)): a layer with zero channels, classes or positions")
        }
        for name in node.outputs { shapes[name] = output }
    }
    return shapes
}

/// Checks `input` (batch first) before `graph` runs on it in batches of `batchSize`: a positive batch size,
/// at least one sample, the declared input shape, and every tensor's shape at that batch within
/// `ShapeLimits` (so a hostile model fails here with a message instead of trapping or allocating without
/// bound while running).
///
/// `memory` bounds the bytes of any one tensor of a batch (default: half of the physical memory), since an
/// allocation that fails aborts the process.
public func checkInput(_ input: Tensor, of graph: Graph, batchSize: Int, memory: Int = ShapeLimits.memoryBytes) throws {
    guard batchSize > 0 else { throw ExecutionError.invalidBatchSize(batchSize) }
    guard let info = graph.inputs.first, graph.inputs.count == 1 else {
        throw ExecutionError.missingInput(name: graph.inputs.map(\.name).joined(separator: ", "))
    }
    guard !graph.outputs.isEmpty else { throw ExecutionError.unknownTensor(name: "(the graph declares no outputs)") }
    let output = graph.outputs[0].name
    guard output == info.name || graph.nodes.contains(where: { $0.outputs.contains(output) }) else {
        throw ExecutionError.constantOutput(name: output)
    }
    guard input.rank >= 1, input.rank == info.dimensions.count, zip(input.shape, info.dimensions).allSatisfy({ $1 == nil || $0 == $1! }) else {
        throw ExecutionError.inputShapeMismatch(name: info.name, expected: info.dimensions, got: input.shape)
    }
    guard input.shape[0] > 0 else { throw ExecutionError.noSamples(name: info.name) }
    let shapes = try inferShapes(of: graph, inputShapes: [info.name: [Swift.min(batchSize, input.shape[0])] + input.shape.dropFirst()])
    for (name, shape) in shapes.sorted(by: { $0.key < $1.key }) where shape.reduce(1, *) > memory / MemoryLayout<Float>.stride {
        throw ShapeInferenceError.beyondMemory(tensor: name, shape: shape, bytes: shape.reduce(1, *) * MemoryLayout<Float>.stride, memory: memory)
    }
}

/// The shape of a node's output given its operands' shapes (`nil`: an omitted optional input).
func outputShape(of node: Node, operands: [[Int]?]) throws -> [Int] {
    func fail(_ detail: String) -> ShapeInferenceError {
        .inconsistentShapes(node: node.name, op: node.op.onnxName, detail: detail)
    }
    func operand(_ i: Int) throws -> [Int] {
        guard i < operands.count, let shape = operands[i] else { throw fail("input \(i) is required") }
        return shape
    }
    func optional(_ i: Int) -> [Int]? { i < operands.count ? operands[i] : nil }

    switch node.op {
    case .conv(let p):
        let x = try operand(0), w = try operand(1)
        guard x.count == 4 else { throw fail("expects a 4-D NCHW input, got \(x)") }
        guard w.count == 4 else { throw fail("expects a 4-D weight [M, C/groups, kH, kW], got \(w)") }
        guard p.groups > 0, w[0] % p.groups == 0, w[1] * p.groups == x[1] else {
            throw fail("channel mismatch: the input has \(x[1]) channels but weight \(w) with \(p.groups) group(s) "
                + "expects \(w[1] * p.groups)")
        }
        guard w[2] == p.window.kernel.h, w[3] == p.window.kernel.w else {
            throw fail("weight \(w) does not match kernel_shape [\(p.window.kernel.h), \(p.window.kernel.w)]")
        }
        if let b = optional(2), b != [w[0]] { throw fail("bias has shape \(b), expected [\(w[0])]") }
        let out = p.window.outputSize(height: x[2], width: x[3])
        guard out.h > 0, out.w > 0 else { throw fail("input \(x) is smaller than the kernel window") }
        return [x[0], w[0], out.h, out.w]
    case .batchNormalization:
        let x = try operand(0)
        guard x.count >= 2 else { throw fail("expects at least a 2-D input, got \(x)") }
        for i in 1...4 {
            let s = try operand(i)
            guard s.shapeProduct == x[1] else {
                throw fail("per-channel parameter \(i) has shape \(s) but the input has \(x[1]) channels")
            }
        }
        return x
    case .relu, .clip, .sigmoid, .hardSigmoid, .hardSwish, .gelu, .erf, .identity:
        return try operand(0)
    case .add, .mul:
        let a = try operand(0), b = try operand(1)
        guard let shape = Elementwise.broadcastShape(a, b) else {
            throw fail("shapes \(a) and \(b) cannot be broadcast together")
        }
        return shape
    case .maxPool(let window), .averagePool(let window, _):
        let x = try operand(0)
        guard x.count == 4 else { throw fail("expects a 4-D NCHW input, got \(x)") }
        let out = window.outputSize(height: x[2], width: x[3])
        guard out.h > 0, out.w > 0 else { throw fail("input \(x) is smaller than the pooling window") }
        return [x[0], x[1], out.h, out.w]
    case .globalAveragePool:
        let x = try operand(0)
        guard x.count == 4 else { throw fail("expects a 4-D NCHW input, got \(x)") }
        guard x[2] > 0, x[3] > 0 else { throw fail("input \(x) has no positions to average") }
        return [x[0], x[1], 1, 1]
    case .flatten(let axis):
        let x = try operand(0)
        let a = axis < 0 ? axis + x.count : axis
        guard a >= 0, a <= x.count else { throw fail("axis \(axis) is out of range for rank \(x.count)") }
        return [Array(x[..<a]).shapeProduct, Array(x[a...]).shapeProduct]
    case .reshape(let target, let allowZero):
        let x = try operand(0)
        guard let shape = ShapeRules.reshape(x, to: target, allowZero: allowZero) else {
            throw fail("cannot reshape \(x) (\(x.shapeProduct) elements) to \(target): the element counts differ")
        }
        return shape
    case .gemm(_, _, let transA, let transB):
        let a = try operand(0), b = try operand(1)
        guard a.count == 2, b.count == 2 else { throw fail("expects 2-D A and B, got \(a) and \(b)") }
        let k1 = transA ? a[0] : a[1], k2 = transB ? b[1] : b[0]
        guard k1 == k2 else {
            throw fail("inner dimensions differ: A \(a) and B \(b) (transA \(transA), transB \(transB)) give \(k1) and \(k2)")
        }
        let m = transA ? a[1] : a[0], n = transB ? b[0] : b[1]
        if let c = optional(2), Elementwise.broadcastShape(c, [m, n]) != [m, n] {
            throw fail("C \(c) cannot be broadcast to [\(m), \(n)]")
        }
        return [m, n]
    case .matMul:
        let a = try operand(0), b = try operand(1)
        guard let shape = ShapeRules.matMul(a, b) else { throw fail("shapes \(a) and \(b) cannot be multiplied") }
        return shape
    case .concat(let axis):
        let parts = try (0..<operands.count).map(operand)
        guard let first = parts.first else { throw fail("needs at least one input") }
        let a = axis < 0 ? axis + first.count : axis
        guard a >= 0, a < first.count else { throw fail("axis \(axis) is out of range for rank \(first.count)") }
        for p in parts where p.count != first.count || (0..<p.count).contains(where: { $0 != a && p[$0] != first[$0] }) {
            throw fail("inputs \(parts) differ outside axis \(a)")
        }
        var out = first
        out[a] = parts.map { $0[a] }.reduce(0, +)
        return out
    case .layerNormalization(let norm):
        let x = try operand(0)
        guard let axes = norm.axes(rank: x.count) else { throw fail("normalized axes do not fit an input of shape \(x)") }
        let extent = Array(x[axes]).shapeProduct
        for index in 1..<operands.count {
            guard let parameter = operands[index] else { continue }
            let count = parameter.shapeProduct
            guard count == extent || count == 1 else {
                throw fail("scale and bias need \(extent) values (the normalized block of \(x)), got shape \(parameter)")
            }
        }
        return x
    case .localResponseNormalization:
        let x = try operand(0)
        guard x.count >= 3 else { throw fail("expects an [N, C, ...] input, got \(x)") }
        return x
    case .softmax(let axis):
        let x = try operand(0)
        guard axis >= -x.count, axis < x.count else { throw fail("axis \(axis) is out of range for rank \(x.count)") }
        return x
    case .slice(let axis, let start, let end):
        var x = try operand(0)
        guard axis >= 0, axis < x.count, start >= 0, start <= end, end <= x[axis] else {
            throw fail("elements \(start)..<\(end) of axis \(axis) do not fit the input \(x)")
        }
        x[axis] = end - start
        return x
    case .transpose(let permutation):
        let x = try operand(0)
        guard permutation.sorted() == Array(0..<x.count) else {
            throw fail("perm \(permutation) is not a permutation of the input's \(x.count) dimensions (shape \(x))")
        }
        return permutation.map { x[$0] }
    }
}

/// Whether `op` is a layer with weights (Conv, Gemm, MatMul), whose empty output means zero channels or classes.
private func producesLayerOutput(_ op: Operator) -> Bool {
    switch op {
    case .conv, .gemm, .matMul: return true
    default: return false
    }
}
