import Graph
import TensorKernels

/// Shape arithmetic and constants evaluated at import, and Reshape targets made to follow the run's batch.
extension GraphConverter {
    /// Operators the importer evaluates when every input is known at import (Shape: when its input's shape is).
    static let foldableOperators: Set<String> = [
        "Add", "Cast", "Concat", "ConstantOfShape", "Div", "Gather", "Identity", "Mul", "Reshape", "Shape", "Slice",
        "Squeeze", "Sub", "Sum", "Transpose", "Unsqueeze",
    ]

    /// Evaluates `node` at import when it computes on known values only (shape arithmetic, constants) and
    /// records its result; returns whether it did.
    mutating func fold(_ node: Onnx_NodeProto, name: String) throws -> Bool {
        let op = node.opType
        guard node.domain.isEmpty || node.domain == "ai.onnx", Self.foldableOperators.contains(op),
              node.output.count == 1, !node.output[0].isEmpty else { return false }
        let output = node.output[0]
        // Identity of a constant is the same constant under another name (exporters de-duplicate equal
        // initializers this way); the tensor is not decoded.
        if op == "Identity", node.input.count == 1, var alias = constants[node.input[0]] {
            alias.name = output
            constants[output] = alias
            return true
        }
        if op == "Shape" {
            guard node.input.count == 1, !node.input[0].isEmpty else { return false }
            let reader = try AttributeReader(node, name: name, allowed: opset >= 15 ? ["start", "end"] : [])
            known[output] = try Self.batchProbes.indices.map { probe in
                guard let s = shape(of: node.input[0], probe: probe) else {
                    throw ONNXError.cannotFold(node: name, op: op, reason: "the shape of '\(node.input[0])' is not known at import "
                        + "(it depends on a dimension the model input leaves symbolic, or on a node whose shape cannot be inferred); "
                        + "declare the input's height and width in the model")
                }
                let range = KnownValueArithmetic.sliceRange(start: try reader.int("start", default: 0),
                                                            end: try reader.int("end", default: s.count), extent: s.count)
                return KnownValue(integers: Array(s[range]))
            }
            return true
        }
        guard op == "ConstantOfShape" || !node.input.isEmpty else { return false }
        var operands: [[KnownValue]?] = []
        for tensor in node.input {
            if tensor.isEmpty { operands.append(nil); continue }
            guard let values = try knownValues(tensor) else { return false }
            operands.append(values)
        }
        known[output] = try Self.batchProbes.indices.map { probe in
            do {
                let value = try evaluate(node, name: name, operands.map { $0?[probe] })
                guard value.elements.count <= TensorDecoder.maxElementCount else {
                    throw KnownValueArithmetic.Failure(reason: "the result has \(value.elements.count) elements, more than the "
                        + "\(TensorDecoder.maxElementCount) a tensor may have")
                }
                return value
            } catch let failure as KnownValueArithmetic.Failure {
                throw ONNXError.cannotFold(node: name, op: op, reason: failure.reason)
            }
        }
        return true
    }

    /// The value of a foldable node for one probe, given its operands' values (`nil`: omitted input).
    private func evaluate(_ node: Onnx_NodeProto, name: String, _ args: [KnownValue?]) throws -> KnownValue {
        typealias Failure = KnownValueArithmetic.Failure
        func arg(_ i: Int) throws -> KnownValue {
            guard i < args.count, let value = args[i] else { throw Failure(reason: "input \(i) is required") }
            return value
        }
        func optional(_ i: Int) -> KnownValue? { i < args.count ? args[i] : nil }
        let op = node.opType
        switch op {
        case "Add", "Sub", "Mul", "Div":
            _ = try AttributeReader(node, name: name, allowed: [])
            guard args.count == 2 else { throw Failure(reason: "expects 2 inputs, has \(args.count)") }
            return try KnownValueArithmetic.elementwise(op, try arg(0), try arg(1))
        case "Sum":
            _ = try AttributeReader(node, name: name, allowed: [])
            var total = try arg(0)
            for i in 1..<Swift.max(args.count, 1) { total = try KnownValueArithmetic.elementwise("Add", total, try arg(i)) }
            return total
        case "Identity":
            _ = try AttributeReader(node, name: name, allowed: [])
            return try arg(0)
        case "Gather":
            let reader = try AttributeReader(node, name: name, allowed: ["axis"])
            return try KnownValueArithmetic.gather(try arg(0), indices: try arg(1), axis: try reader.int("axis", default: 0))
        case "Concat":
            let reader = try AttributeReader(node, name: name, allowed: ["axis"])
            return try KnownValueArithmetic.concat(try args.indices.map(arg), axis: try reader.int("axis", default: 0))
        case "Unsqueeze", "Squeeze":
            let reader = try AttributeReader(node, name: name, allowed: opset < 13 ? ["axes"] : [])
            let axes = opset < 13 ? try reader.ints("axes") : optional(1)?.integers
            var value = try arg(0)
            if op == "Unsqueeze" {
                guard let axes else { throw Failure(reason: "it has no axes") }
                value.shape = try KnownValueArithmetic.unsqueezed(value.shape, axes: axes)
            } else {
                value.shape = try KnownValueArithmetic.squeezed(value.shape, axes: axes)
            }
            return value
        case "Reshape":
            let reader = try AttributeReader(node, name: name, allowed: ["allowzero"])
            var value = try arg(0)
            let target = try arg(1).integers
            guard let shape = ShapeRules.reshape(value.shape, to: target, allowZero: try reader.bool("allowzero", default: false)) else {
                throw Failure(reason: "cannot reshape \(value.shape) to \(target)")
            }
            value.shape = shape
            return value
        case "Transpose":
            // Exporters transpose weight matrices at run time (`nn.Linear` on a 4-D tensor becomes MatMul by Wᵀ).
            let reader = try AttributeReader(node, name: name, allowed: ["perm"])
            var value = try arg(0)
            let rank = value.shape.count
            let permutation = try reader.ints("perm") ?? Array((0..<rank).reversed())
            guard permutation.sorted() == Array(0..<rank) else {
                throw Failure(reason: "perm \(permutation) is not a permutation of the \(rank) axes of \(value.shape)")
            }
            value.elements = Shaping.transposed(value.elements, shape: value.shape, permutation: permutation)
            value.shape = permutation.map { value.shape[$0] }
            return value
        case "Cast":
            let reader = try AttributeReader(node, name: name, allowed: ["to", "saturate", "round_mode"])
            var value = try arg(0)
            let to = try reader.int("to", default: 0)
            switch to {
            case 1: value.elements = value.elements.map { Double(Float($0)) }; value.isFloat = true
            case 10, 11, 16: value.isFloat = true
            case 9: value.elements = value.elements.map { $0 != 0 ? 1 : 0 }; value.isFloat = false
            case 2, 3, 4, 5, 6, 7, 12, 13: value.elements = value.elements.map { $0.rounded(.towardZero) }; value.isFloat = false
            default: throw Failure(reason: "cast to element type \(to) is not supported at import")
            }
            return value
        case "ConstantOfShape":
            let reader = try AttributeReader(node, name: name, allowed: ["value"])
            let dims = try arg(0).integers
            guard dims.allSatisfy({ $0 >= 0 }), dims.reduce(1, { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }) <= KnownValue.maxElements else {
                throw Failure(reason: "shape \(dims) is negative or larger than \(KnownValue.maxElements) elements")
            }
            var fill = KnownValue(shape: [1], elements: [0], isFloat: true)
            if let attribute = reader.byName["value"] {
                guard attribute.hasT else { throw Failure(reason: "'value' must be a one-element tensor") }
                fill = try decoder.knownValue(attribute.t)
                guard fill.elements.count == 1 else { throw Failure(reason: "'value' must be a one-element tensor") }
            }
            return KnownValue(shape: dims, elements: Array(repeating: fill.elements[0], count: dims.shapeProduct), isFloat: fill.isFloat)
        case "Slice":
            let value = try arg(0)
            let bounds = try sliceBounds(node, name: name, rank: value.shape.count, known: args)
            let ranges = bounds.map { (axis: $0.axis, range: KnownValueArithmetic.sliceRange(start: $0.start, end: $0.end, extent: value.shape[$0.axis])) }
            return KnownValueArithmetic.slice(value, ranges: ranges)
        default:
            throw Failure(reason: "\(op) is not evaluated at import")
        }
    }

    /// Slice's starts, ends and normalised axes (attributes before opset 10, inputs from it); steps other
    /// than 1 are refused.
    func sliceBounds(_ node: Onnx_NodeProto, name: String, rank: Int, known args: [KnownValue?]) throws -> [(axis: Int, start: Int, end: Int)] {
        typealias Failure = KnownValueArithmetic.Failure
        let starts: [Int], ends: [Int]
        var axes: [Int]?
        if opset < 10 {
            let reader = try AttributeReader(node, name: name, allowed: ["starts", "ends", "axes"])
            guard let s = try reader.ints("starts"), let e = try reader.ints("ends") else { throw Failure(reason: "it lacks starts or ends") }
            (starts, ends, axes) = (s, e, try reader.ints("axes"))
        } else {
            _ = try AttributeReader(node, name: name, allowed: [])
            func operand(_ i: Int) -> KnownValue? { i < args.count ? args[i] : nil }
            guard let s = operand(1), let e = operand(2) else { throw Failure(reason: "starts and ends must be known at import") }
            (starts, ends, axes) = (s.integers, e.integers, operand(3)?.integers)
            if let steps = operand(4)?.integers, steps.contains(where: { $0 != 1 }) {
                throw Failure(reason: "steps \(steps) are not supported (only 1)")
            }
        }
        let resolvedAxes = axes ?? Array(0..<starts.count)
        guard starts.count == ends.count, starts.count == resolvedAxes.count else {
            throw Failure(reason: "starts \(starts), ends \(ends) and axes \(resolvedAxes) differ in length")
        }
        return try resolvedAxes.enumerated().map { i, axis in
            let a = axis < 0 ? axis + rank : axis
            guard a >= 0, a < rank else { throw Failure(reason: "axis \(axis) is out of range for rank \(rank)") }
            return (a, starts[i], ends[i])
        }
    }

    /// The IR nodes of a Slice on a run-time tensor: one `.slice` per axis, with bounds resolved against the
    /// input's shape (the same for every batch: slicing the batch dimension is refused).
    mutating func sliceNodes(_ node: Onnx_NodeProto, name: String) throws -> [Node] {
        let op = node.opType
        guard node.input.count >= (opset < 10 ? 1 : 3), node.output.count == 1, !node.input[0].isEmpty else {
            throw ONNXError.wrongArity(node: name, op: op, detail: "expected data, starts and ends, and one output")
        }
        var args: [KnownValue?] = [nil]
        for tensor in node.input.dropFirst() {
            if tensor.isEmpty { args.append(nil); continue }
            args.append(try constantOperand(tensor, node: name, op: op, role: "bounds"))
        }
        let shapes = Self.batchProbes.indices.map { shape(of: node.input[0], probe: $0) }
        guard let first = shapes[0], let second = shapes[1] else {
            throw ONNXError.cannotFold(node: name, op: op, reason: "the shape of its input '\(node.input[0])' is not known at import")
        }
        let bounds: [(axis: Int, start: Int, end: Int)]
        do {
            bounds = try sliceBounds(node, name: name, rank: first.count, known: args)
        } catch let failure as KnownValueArithmetic.Failure {
            throw ONNXError.cannotFold(node: name, op: op, reason: failure.reason)
        }
        var result: [Node] = []
        var current = try dataInput(node.input[0])
        for (k, bound) in bounds.enumerated() {
            guard first[bound.axis] == second[bound.axis] else {
                throw ONNXError.batchDependent(node: name, op: op, reason: "it slices axis \(bound.axis), which follows the batch")
            }
            let range = KnownValueArithmetic.sliceRange(start: bound.start, end: bound.end, extent: first[bound.axis])
            let last = k == bounds.count - 1
            let out = last ? node.output[0] : "\(node.output[0])/axis\(bound.axis)"
            result.append(Node(name: last ? name : "\(name)/\(k + 1)", op: .slice(axis: bound.axis, start: range.lowerBound, end: range.upperBound),
                               inputs: [current], outputs: [out]))
            current = out
        }
        guard !result.isEmpty else { return [Node(name: name, op: .identity, inputs: [current], outputs: [node.output[0]])] }
        return result
    }

    /// Split along one axis into consecutive parts, one Slice node per output. The part sizes come from the
    /// `split` input (opset 13 on) or attribute (before 13), from `num_outputs` (opset 18: parts of
    /// ⌈extent / n⌉, the last one smaller), or else are equal, one per output.
    mutating func splitNodes(_ node: Onnx_NodeProto, name: String) throws -> [Node] {
        let op = node.opType
        guard (1...2).contains(node.input.count), !node.input[0].isEmpty, !node.output.isEmpty else {
            throw ONNXError.wrongArity(node: name, op: op, detail: "expected data, optional split sizes, and at least one output")
        }
        let reader = try AttributeReader(node, name: name, allowed: ["axis", "split", "num_outputs"])
        let shapes = Self.batchProbes.indices.map { shape(of: node.input[0], probe: $0) }
        guard let first = shapes[0], let second = shapes[1] else {
            throw ONNXError.cannotFold(node: name, op: op, reason: "the shape of its input '\(node.input[0])' is not known at import")
        }
        let given = try reader.int("axis", default: 0)
        let axis = given < 0 ? given + first.count : given
        guard (0..<first.count).contains(axis) else {
            throw reader.unsupported("axis", value: "\(given)", "is out of range for rank \(first.count)")
        }
        guard first[axis] == second[axis] else {
            throw ONNXError.batchDependent(node: name, op: op, reason: "it splits axis \(axis), which follows the batch")
        }
        let extent = first[axis], parts = node.output.count
        let sizes: [Int]
        if node.input.count == 2, !node.input[1].isEmpty {
            let known = try constantOperand(node.input[1], node: name, op: op, role: "split sizes")
            guard !known.isFloat, known.elements.allSatisfy({ $0 >= 0 && $0 <= Double(Int32.max) }) else {
                throw ONNXError.cannotFold(node: name, op: op, reason: "its split sizes must be non-negative integers")
            }
            sizes = known.integers
        } else if let listed = try reader.ints("split") {
            sizes = listed
        } else if reader.has("num_outputs") {
            let n = try reader.int("num_outputs", default: parts)
            guard n == parts else { throw reader.unsupported("num_outputs", value: "\(n)", "differs from the node's \(parts) outputs") }
            let part = (extent + n - 1) / n
            sizes = (0..<n).map { Swift.max(0, Swift.min(part, extent - $0 * part)) }
        } else {
            guard extent % parts == 0 else {
                throw ONNXError.cannotFold(node: name, op: op, reason: "axis \(axis) has \(extent) entries, which do not split evenly into \(parts) outputs")
            }
            sizes = Array(repeating: extent / parts, count: parts)
        }
        guard sizes.count == parts, sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == extent else {
            throw ONNXError.cannotFold(node: name, op: op, reason: "its part sizes \(sizes) do not divide the \(extent) entries of axis \(axis) among \(parts) outputs")
        }
        let data = try dataInput(node.input[0])
        var nodes: [Node] = [], start = 0
        for (output, size) in zip(node.output, sizes) {
            defer { start += size }
            guard !output.isEmpty else { continue }
            nodes.append(Node(name: "\(name)/\(output)", op: .slice(axis: axis, start: start, end: start + size), inputs: [data], outputs: [output]))
        }
        return nodes
    }

    /// A Gather on a run-time tensor that reads a view of it: PyTorch's dynamo exporter writes `as_strided`
    /// (ConvNeXt's head) as Gather along axis 0 of the tensor flattened to one dimension, at the indices
    /// 0, 1, ..., n - 1 laid out in the view's shape. At the export batch that is a Reshape to the indices'
    /// shape; it becomes one whose leading entry follows the batch (the flat tensor holds a whole number of
    /// samples at every batch and the view takes all of them at the export batch). Any other Gather of
    /// run-time data is refused, naming the node.
    mutating func gatherViewNode(_ node: Onnx_NodeProto, name: String) throws -> Node {
        let op = node.opType
        let refusal = "an input is computed at run time; RAPQ evaluates Gather only on constants and tensor shapes, "
            + "or as a view (the consecutive positions of a flattened tensor)"
        guard node.input.count == 2, node.output.count == 1, !node.input[0].isEmpty, !node.input[1].isEmpty else {
            throw ONNXError.wrongArity(node: name, op: op, detail: "expected data, indices and one output")
        }
        let reader = try AttributeReader(node, name: name, allowed: ["axis"])
        guard try reader.int("axis", default: 0) == 0, let indices = try knownValues(node.input[1]),
              indices.allSatisfy({ $0 == indices[0] }), !indices[0].isFloat else {
            throw ONNXError.cannotFold(node: name, op: op, reason: refusal)
        }
        let view = indices[0]
        let shapes = Self.batchProbes.indices.map { shape(of: node.input[0], probe: $0) }
        guard let exportBatch, exportBatch >= 1, let first = shapes[0], let second = shapes[1], first.count == 1, second.count == 1,
              first[0] % Self.batchProbes[0] == 0, first[0] / Self.batchProbes[0] * Self.batchProbes[1] == second[0],
              let leading = view.shape.first, leading == exportBatch, view.shape.count >= 1 else {
            throw ONNXError.cannotFold(node: name, op: op, reason: refusal)
        }
        let perSample = first[0] / Self.batchProbes[0]
        guard perSample > 0, view.elements.count == exportBatch * perSample,
              view.elements.enumerated().allSatisfy({ Double($0.offset) == $0.element }) else {
            throw ONNXError.cannotFold(node: name, op: op, reason: refusal)
        }
        return Node(name: name, op: .reshape(shape: [-1] + view.shape.dropFirst(), allowZero: false),
                    inputs: [try dataInput(node.input[0])], outputs: [node.output[0]])
    }

    /// A Reshape target that gives, at every batch size, what `targets` (one per batch probe) give at the
    /// probes, for the input `input`.
    ///
    /// An entry that follows the batch becomes 0 (copy the input's dimension) where the input has that
    /// dimension at the same place, else -1 (inferred) when it is the only one. A constant target whose first
    /// entry is the batch the file was exported with (a fixed-batch export's `[1, -1]`) becomes 0 there when,
    /// at the export batch, the reshape keeps the batch dimension apart from the others.
    func batchRelativeTarget(_ targets: [[Int]], input: String, allowZero: Bool, node: String, op: String) throws -> [Int] {
        let shapes = Self.batchProbes.indices.map { shape(of: input, probe: $0) }
        guard targets.allSatisfy({ $0.count == targets[0].count }) else {
            throw ONNXError.batchDependent(node: node, op: op, reason: "the rank of its target shape depends on the batch size")
        }
        var result = targets[0]
        if targets.allSatisfy({ $0 == targets[0] }) {
            guard let exportBatch, let first = shapes[0], let second = shapes[1], first.count >= 1, first[0] != second[0],
                  result.first == exportBatch,
                  let atExport = ShapeRules.reshape([exportBatch] + first.dropFirst(), to: result, allowZero: allowZero),
                  atExport.first == exportBatch,
                  atExport.dropFirst().reduce(1, *) == first.dropFirst().reduce(1, *) else { return result }
            if !allowZero {
                result[0] = 0
            } else if !result.contains(-1) {
                result[0] = -1
            } else {
                return targets[0]
            }
            for s in shapes.compactMap({ $0 }) where ShapeRules.reshape(s, to: result, allowZero: allowZero) != [s[0]] + atExport.dropFirst() {
                return targets[0]
            }
            return result
        } else {
            var open: [Int] = []
            for i in result.indices where targets.contains(where: { $0[i] != result[i] }) {
                let copies = !allowZero && shapes.indices.allSatisfy { p in
                    guard let s = shapes[p], i < s.count else { return false }
                    return s[i] == targets[p][i]
                }
                if copies { result[i] = 0 } else { open.append(i) }
            }
            if open.count == 1, !result.contains(-1) {
                result[open[0]] = -1
            } else if !open.isEmpty {
                throw ONNXError.batchDependent(node: node, op: op, reason: "its target shape (\(targets[0]) at batch \(Self.batchProbes[0]), "
                    + "\(targets[1]) at batch \(Self.batchProbes[1])) has \(open.count) entries that follow the batch")
            }
        }
        // The rewritten target must give each probe's result.
        for (p, s) in shapes.enumerated() {
            guard let s else { continue }
            let expected = ShapeRules.reshape(s, to: targets[p], allowZero: allowZero)
            guard let got = ShapeRules.reshape(s, to: result, allowZero: allowZero), expected == nil || got == expected else {
                throw ONNXError.batchDependent(node: node, op: op, reason: "its target shape \(targets[p]) cannot be rewritten to follow the batch "
                    + "(tried \(result) on input \(s))")
            }
        }
        return result
    }
}
