import Graph
import TensorKernels

/// A tensor the importer knows before anything runs: a constant, or a value computed from constants and
/// tensor shapes (the shape arithmetic exporters write: Shape, Gather, Concat, Div...).
///
/// Elements are held as `Double`, exact for every integer a shape can hold and for float32 values. The
/// importer evaluates shape arithmetic once per batch probe (`GraphConverter.batchProbes`), so a value that
/// depends on the batch size shows it by differing between probes.
struct KnownValue: Equatable {
    /// The dimensions.
    var shape: [Int]
    /// The elements in row-major order.
    var elements: [Double]
    /// Whether the ONNX element type is floating point (else an integer or boolean type).
    var isFloat: Bool

    /// A 1-D integer value (a shape, a list of axes).
    init(integers: [Int]) {
        self.init(shape: [integers.count], elements: integers.map(Double.init), isFloat: false)
    }

    /// A value from its parts; the element count must match the shape.
    init(shape: [Int], elements: [Double], isFloat: Bool) {
        self.shape = shape
        self.elements = elements
        self.isFloat = isFloat
    }

    /// The elements as integers (truncated toward zero; shape values are integral already).
    var integers: [Int] { elements.map { Int(exactly: $0.rounded(.towardZero)) ?? 0 } }

    /// The largest tensor `ConstantOfShape` may build at import (the one folded operator whose result is not
    /// bounded by its inputs' sizes): shape arithmetic is small, and the limit keeps a hostile file from
    /// allocating without bound.
    static let maxElements = 1 << 24
}

/// Evaluation of the operators the importer folds, on `KnownValue`s (ONNX semantics, NumPy broadcasting).
enum KnownValueArithmetic {
    /// Why an evaluation failed, as a sentence naming the operands.
    struct Failure: Error { let reason: String }

    /// The element-wise result of `op` ("Add", "Sub", "Mul", "Div") on broadcast operands. Integer division
    /// truncates toward zero; float results are rounded to float32, as the runtime would compute them.
    static func elementwise(_ op: String, _ a: KnownValue, _ b: KnownValue) throws -> KnownValue {
        guard let shape = Elementwise.broadcastShape(a.shape, b.shape) else {
            throw Failure(reason: "shapes \(a.shape) and \(b.shape) cannot be broadcast together")
        }
        let isFloat = a.isFloat || b.isFloat
        let count = shape.shapeProduct
        let ia = Elementwise.sourceIndices(of: a.shape, broadcastTo: shape), ib = Elementwise.sourceIndices(of: b.shape, broadcastTo: shape)
        var out = [Double](repeating: 0, count: count)
        for i in 0..<count {
            let x = a.elements[ia[i]], y = b.elements[ib[i]]
            var v: Double
            switch op {
            case "Add": v = x + y
            case "Sub": v = x - y
            case "Mul": v = x * y
            default:
                if isFloat {
                    v = x / y
                } else {
                    guard y != 0 else { throw Failure(reason: "integer division by zero") }
                    v = (x / y).rounded(.towardZero)
                }
            }
            if isFloat { v = Double(Float(v)) }
            out[i] = v
        }
        return KnownValue(shape: shape, elements: out, isFloat: isFloat)
    }

    /// ONNX Gather: the slices of `data` along `axis` at `indices` (negative indices count from the end).
    static func gather(_ data: KnownValue, indices: KnownValue, axis: Int) throws -> KnownValue {
        let rank = data.shape.count
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0, a < rank else { throw Failure(reason: "axis \(axis) is out of range for rank \(rank)") }
        let extent = data.shape[a]
        let outer = Array(data.shape[..<a]).shapeProduct, inner = Array(data.shape[(a + 1)...]).shapeProduct
        let picks = try indices.integers.map { i -> Int in
            let j = i < 0 ? i + extent : i
            guard j >= 0, j < extent else { throw Failure(reason: "index \(i) is out of range for dimension \(extent)") }
            return j
        }
        var out: [Double] = []
        out.reserveCapacity(outer * picks.count * inner)
        for o in 0..<outer {
            for j in picks { out.append(contentsOf: data.elements[(o * extent + j) * inner ..< (o * extent + j + 1) * inner]) }
        }
        let shape = Array(data.shape[..<a]) + indices.shape + Array(data.shape[(a + 1)...])
        return KnownValue(shape: shape, elements: out, isFloat: data.isFloat)
    }

    /// ONNX Concat of known values along `axis`.
    static func concat(_ parts: [KnownValue], axis: Int) throws -> KnownValue {
        guard let first = parts.first else { throw Failure(reason: "needs at least one input") }
        let rank = first.shape.count
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0, a < rank else { throw Failure(reason: "axis \(axis) is out of range for rank \(rank)") }
        for p in parts where p.shape.count != rank || (0..<rank).contains(where: { $0 != a && p.shape[$0] != first.shape[$0] }) {
            throw Failure(reason: "inputs \(parts.map(\.shape)) differ outside axis \(a)")
        }
        let outer = Array(first.shape[..<a]).shapeProduct, inner = Array(first.shape[(a + 1)...]).shapeProduct
        var out: [Double] = []
        for o in 0..<outer {
            for p in parts {
                let block = p.shape[a] * inner
                out.append(contentsOf: p.elements[o * block ..< (o + 1) * block])
            }
        }
        var shape = first.shape
        shape[a] = parts.map { $0.shape[a] }.reduce(0, +)
        return KnownValue(shape: shape, elements: out, isFloat: parts.contains { $0.isFloat })
    }

    /// The half-open range `[start, end)` (step 1) that ONNX Slice selects from a dimension of `extent`:
    /// negative bounds count from the end, and bounds are clamped to the dimension.
    static func sliceRange(start: Int, end: Int, extent: Int) -> Range<Int> {
        func clamp(_ v: Int) -> Int { Swift.min(Swift.max(v < 0 ? v + extent : v, 0), extent) }
        let lo = clamp(start), hi = clamp(end)
        return lo..<Swift.max(lo, hi)
    }

    /// ONNX Slice with step 1 on the given axes.
    static func slice(_ data: KnownValue, ranges: [(axis: Int, range: Range<Int>)]) -> KnownValue {
        var value = data
        for (axis, range) in ranges {
            let outer = Array(value.shape[..<axis]).shapeProduct, inner = Array(value.shape[(axis + 1)...]).shapeProduct
            let extent = value.shape[axis]
            var out: [Double] = []
            for o in 0..<outer {
                out.append(contentsOf: value.elements[(o * extent + range.lowerBound) * inner ..< (o * extent + range.upperBound) * inner])
            }
            value.shape[axis] = range.count
            value.elements = out
        }
        return value
    }

    /// `shape` with size-1 dimensions inserted at `axes` (ONNX Unsqueeze; axes refer to the output's rank).
    static func unsqueezed(_ shape: [Int], axes: [Int]) throws -> [Int] {
        let rank = shape.count + axes.count
        let normalized = axes.map { $0 < 0 ? $0 + rank : $0 }
        guard normalized.allSatisfy({ $0 >= 0 && $0 < rank }), Set(normalized).count == normalized.count else {
            throw Failure(reason: "axes \(axes) are out of range or repeated for an output of rank \(rank)")
        }
        var result: [Int] = []
        var source = shape.makeIterator()
        for d in 0..<rank { result.append(normalized.contains(d) ? 1 : source.next()!) }
        return result
    }

    /// `shape` without the size-1 dimensions at `axes` (all size-1 dimensions when `axes` is nil; ONNX Squeeze).
    static func squeezed(_ shape: [Int], axes: [Int]?) throws -> [Int] {
        let rank = shape.count
        guard let axes else { return shape.filter { $0 != 1 } }
        let normalized = axes.map { $0 < 0 ? $0 + rank : $0 }
        for (axis, d) in zip(axes, normalized) {
            guard d >= 0, d < rank else { throw Failure(reason: "axis \(axis) is out of range for rank \(rank)") }
            guard shape[d] == 1 else { throw Failure(reason: "axis \(axis) has size \(shape[d]), not 1") }
        }
        return shape.enumerated().filter { !normalized.contains($0.offset) }.map(\.element)
    }
}
