import TensorKernels

/// Computes one node's outputs from its operands by calling the matching kernel.
///
/// Operands are checked here, once per node, so that the kernels can assume valid shapes.
public enum NodeEvaluator {
    /// The node's outputs for the given operands (`nil` marks an omitted optional input). `clamp`
    /// bounds a convolution's output (a fused activation); other operators ignore it.
    public static func forward(_ node: Node, _ operands: [Tensor?], clamp: ClosedRange<Float>? = nil) throws -> [Tensor] {
        func operand(_ i: Int) throws -> Tensor {
            guard i < operands.count, let t = operands[i] else {
                throw ExecutionError.incompatibleShapes(node: node.name, op: node.op.onnxName, detail: "input \(i) is required")
            }
            return t
        }
        func fail(_ detail: String) -> ExecutionError {
            .incompatibleShapes(node: node.name, op: node.op.onnxName, detail: detail)
        }
        switch node.op {
        case .conv(let parameters):
            let x = try operand(0), w = try operand(1)
            let b = operands.count > 2 ? operands[2] : nil
            guard x.rank == 4, w.rank == 4 else { throw fail("expects 4-D input and weight, got \(x.shape) and \(w.shape)") }
            guard parameters.groups > 0, x.shape[1] % parameters.groups == 0, w.shape[0] % parameters.groups == 0,
                  w.shape[1] * parameters.groups == x.shape[1] else {
                throw fail("input has \(x.shape[1]) channels but weight \(w.shape) with \(parameters.groups) group(s) expects \(w.shape[1] * parameters.groups)")
            }
            guard w.shape[2] == parameters.window.kernel.h, w.shape[3] == parameters.window.kernel.w else {
                throw fail("weight \(w.shape) does not match kernel_shape \(parameters.window.kernel)")
            }
            if let b, b.shape != [w.shape[0]] { throw fail("bias has shape \(b.shape), expected [\(w.shape[0])]") }
            let out = parameters.window.outputSize(height: x.shape[2], width: x.shape[3])
            guard out.h > 0, out.w > 0 else { throw fail("input \(x.shape) is smaller than the kernel window") }
            return [Conv2D.forward(x, weight: w, bias: b, parameters: parameters, clamp: clamp)]
        case .batchNormalization(let epsilon):
            let x = try operand(0)
            guard x.rank >= 2 else { throw fail("expects at least 2-D input, got \(x.shape)") }
            let stats = try (1...4).map { try operand($0) }
            for s in stats where s.count != x.shape[1] {
                throw fail("per-channel parameter has \(s.count) values but the input has \(x.shape[1]) channels")
            }
            return [BatchNorm.inference(x, scale: stats[0], bias: stats[1], mean: stats[2], variance: stats[3], epsilon: epsilon)]
        case .relu:
            return [Activation.relu(try operand(0))]
        case .clip(let lo, let hi):
            return [Activation.clip(try operand(0), min: lo, max: hi)]
        case .sigmoid:
            return [Activation.sigmoid(try operand(0))]
        case .hardSigmoid(let alpha, let beta):
            return [Activation.hardSigmoid(try operand(0), alpha: alpha, beta: beta)]
        case .hardSwish:
            return [Activation.hardSwish(try operand(0))]
        case .gelu:
            return [Activation.gelu(try operand(0))]
        case .erf:
            return [Activation.erf(try operand(0))]
        case .layerNormalization(let norm):
            let x = try operand(0), scale = try operand(1)
            let bias = node.inputs.count > 2 && !node.inputs[2].isEmpty ? try operand(2) : nil
            guard let axes = norm.axes(rank: x.rank) else { throw fail("normalized axes do not fit an input of shape \(x.shape)") }
            let extent = x.shape[axes].reduce(1, *)
            for parameter in [scale, bias].compactMap({ $0 }) where parameter.count != extent && parameter.count != 1 {
                throw fail("scale and bias need \(extent) values (the normalized block of \(x.shape)), got \(parameter.count)")
            }
            return [norm.forward(x, scale: scale, bias: bias)]
        case .add, .mul:
            let a = try operand(0), b = try operand(1)
            guard Elementwise.broadcastShape(a.shape, b.shape) != nil else {
                throw fail("shapes \(a.shape) and \(b.shape) cannot be broadcast together")
            }
            return [node.op == .add ? Elementwise.add(a, b) : Elementwise.mul(a, b)]
        case .maxPool(let window), .averagePool(let window, _):
            let x = try operand(0)
            guard x.rank == 4 else { throw fail("expects a 4-D NCHW input, got \(x.shape)") }
            let out = window.outputSize(height: x.shape[2], width: x.shape[3])
            guard out.h > 0, out.w > 0 else { throw fail("input \(x.shape) is smaller than the pooling window") }
            if case .averagePool(_, let includePad) = node.op {
                return [Pooling.averagePool(x, window: window, countIncludePad: includePad)]
            }
            return [Pooling.maxPool(x, window: window)]
        case .globalAveragePool:
            let x = try operand(0)
            guard x.rank == 4 else { throw fail("expects a 4-D NCHW input, got \(x.shape)") }
            return [Pooling.globalAveragePool(x)]
        case .flatten(let axis):
            let x = try operand(0)
            let a = axis < 0 ? axis + x.rank : axis
            guard a >= 0, a <= x.rank else { throw fail("axis \(axis) is out of range for rank \(x.rank)") }
            return [x.reshaped([Array(x.shape[..<a]).shapeProduct, Array(x.shape[a...]).shapeProduct])]
        case .reshape(let target, let allowZero):
            let x = try operand(0)
            guard let shape = ShapeRules.reshape(x.shape, to: target, allowZero: allowZero) else {
                throw fail("cannot reshape \(x.shape) (\(x.count) elements) to \(target)")
            }
            return [x.reshaped(shape)]
        case .gemm(let alpha, let beta, let transA, let transB):
            let a = try operand(0), b = try operand(1)
            let c = operands.count > 2 ? operands[2] : nil
            guard a.rank == 2, b.rank == 2 else { throw fail("expects 2-D A and B, got \(a.shape) and \(b.shape)") }
            let k1 = transA ? a.shape[0] : a.shape[1], k2 = transB ? b.shape[1] : b.shape[0]
            guard k1 == k2 else { throw fail("inner dimensions differ: A \(a.shape) and B \(b.shape) (transA \(transA), transB \(transB))") }
            let m = transA ? a.shape[1] : a.shape[0], n = transB ? b.shape[0] : b.shape[1]
            if let c, Elementwise.broadcastShape(c.shape, [m, n]) != [m, n] {
                throw fail("C \(c.shape) cannot be broadcast to [\(m), \(n)]")
            }
            return [MatrixMultiply.gemm(a, b, c: c, alpha: alpha, beta: beta, transA: transA, transB: transB)]
        case .matMul:
            let a = try operand(0), b = try operand(1)
            guard ShapeRules.matMul(a.shape, b.shape) != nil else { throw fail("shapes \(a.shape) and \(b.shape) cannot be multiplied") }
            return [MatrixMultiply.matMul(a, b)]
        case .concat(let axis):
            let parts = try (0..<operands.count).map { try operand($0) }
            guard let first = parts.first else { throw fail("needs at least one input") }
            let a = axis < 0 ? axis + first.rank : axis
            guard a >= 0, a < first.rank else { throw fail("axis \(axis) is out of range for rank \(first.rank)") }
            for p in parts where p.rank != first.rank || (0..<p.rank).contains(where: { $0 != a && p.shape[$0] != first.shape[$0] }) {
                throw fail("inputs \(parts.map(\.shape)) differ outside axis \(a)")
            }
            return [Shaping.concat(parts, axis: a)]
        case .identity:
            return [try operand(0)]
        case .localResponseNormalization(let lrn):
            let x = try operand(0)
            guard x.rank >= 3 else { throw fail("expects an [N, C, ...] input, got \(x.shape)") }
            return [lrn.forward(x)]
        case .softmax(let axis):
            let x = try operand(0)
            let a = axis < 0 ? axis + x.rank : axis
            guard a >= 0, a < x.rank else { throw fail("axis \(axis) is out of range for rank \(x.rank)") }
            return [Activation.softmax(x, axis: a)]
        case .slice(let axis, let start, let end):
            let x = try operand(0)
            guard axis >= 0, axis < x.rank, start >= 0, start <= end, end <= x.shape[axis] else {
                throw fail("elements \(start)..<\(end) of axis \(axis) do not fit the input \(x.shape)")
            }
            return [Shaping.slice(x, axis: axis, range: start..<end)]
        case .transpose(let permutation):
            let x = try operand(0)
            guard permutation.sorted() == Array(0..<x.rank) else {
                throw fail("perm \(permutation) is not a permutation of the input's \(x.rank) dimensions (shape \(x.shape))")
            }
            return [Shaping.transpose(x, permutation: permutation)]
        }
    }
}

/// Shape arithmetic shared by shape inference and execution.
public enum ShapeRules {
    /// The result of an ONNX Reshape of `shape` to `target`, or nil if impossible.
    public static func reshape(_ shape: [Int], to target: [Int], allowZero: Bool) -> [Int]? {
        var result = target
        for (i, d) in target.enumerated() where d == 0 && !allowZero {
            guard i < shape.count else { return nil }
            result[i] = shape[i]
        }
        let inferred = result.indices.filter { result[$0] == -1 }
        guard inferred.count <= 1, result.allSatisfy({ $0 >= -1 }) else { return nil }
        let total = shape.shapeProduct
        if let i = inferred.first {
            let known = result.enumerated().filter { $0.offset != i }.map(\.element).shapeProduct
            guard known > 0, total % known == 0 else { return nil }
            result[i] = total / known
        }
        return result.shapeProduct == total ? result : nil
    }

    /// The output shape of NumPy `matmul`, or nil if the operands do not fit.
    public static func matMul(_ a: [Int], _ b: [Int]) -> [Int]? {
        guard !a.isEmpty, !b.isEmpty else { return nil }
        let a2 = a.count == 1 ? [1] + a : a
        let b2 = b.count == 1 ? b + [1] : b
        guard a2[a2.count - 1] == b2[b2.count - 2] else { return nil }
        guard let batch = Elementwise.broadcastShape(Array(a2.dropLast(2)), Array(b2.dropLast(2))) else { return nil }
        var out = batch + [a2[a2.count - 2], b2[b2.count - 1]]
        if b.count == 1 { out.removeLast() }
        if a.count == 1 { out.remove(at: out.count - (b.count == 1 ? 1 : 2)) }
        return out
    }
}
