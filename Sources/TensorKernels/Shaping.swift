/// Joining tensors along an axis (ONNX `Concat`) and splitting the gradient back.
public enum Shaping {
    /// The parts joined along `axis` (already normalised to `0..<rank`); all other dimensions must agree.
    public static func concat(_ parts: [Tensor], axis: Int) -> Tensor {
        precondition(!parts.isEmpty, "Concat needs at least one input")
        let first = parts[0].shape
        precondition(axis >= 0 && axis < first.count, "axis \(axis) out of range for \(first)")
        var shape = first
        shape[axis] = parts.reduce(0) { total, part in
            precondition(part.rank == first.count && (0..<first.count).allSatisfy { $0 == axis || part.shape[$0] == first[$0] },
                         "Concat inputs \(first) and \(part.shape) differ outside axis \(axis)")
            return total + part.shape[axis]
        }
        let outer = first[..<axis].reduce(1, *), inner = first[(axis + 1)...].reduce(1, *)
        let blocks = parts.map { $0.shape[axis] * inner }, total = shape[axis] * inner
        return Tensor(shape: shape) { out in
            var start = 0
            for (part, block) in zip(parts, blocks) {
                part.withUnsafeBufferPointer { source in
                    for o in 0..<outer { (out.base + o * total + start).update(from: source.base + o * block, count: block) }
                }
                start += block
            }
        }
    }

    /// The slices of the output gradient that belong to each input of `concat` (their `shapes`).
    public static func concatBackward(shapes: [[Int]], axis: Int, outputGradient: Tensor) -> [Tensor] {
        let shape = outputGradient.shape
        let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *), total = shape[axis] * inner
        precondition(shapes.reduce(0) { $0 + $1[axis] } == shape[axis], "Concat shapes \(shapes) do not add up to \(shape)")
        var start = 0
        return outputGradient.withUnsafeBufferPointer { source in
            shapes.map { partShape in
                let block = partShape[axis] * inner
                defer { start += block }
                return Tensor(shape: partShape) { out in
                    for o in 0..<outer { (out.base + o * block).update(from: source.base + o * total + start, count: block) }
                }
            }
        }
    }

    /// ONNX `Transpose`: output dimension `i` is input dimension `permutation[i]` (a permutation of
    /// `0..<rank`, checked by the caller). A channel shuffle is a Reshape, this, and a Reshape back.
    public static func transpose(_ x: Tensor, permutation: [Int]) -> Tensor {
        Tensor(shape: permutation.map { x.shape[$0] }, data: transposed(x.data, shape: x.shape, permutation: permutation))
    }

    /// The row-major `elements` of a tensor of `shape`, reordered as `transpose` does (any element type:
    /// the integer engine moves codes with it).
    public static func transposed<Element>(_ elements: [Element], shape: [Int], permutation: [Int]) -> [Element] {
        precondition(permutation.sorted() == Array(0..<shape.count), "\(permutation) is not a permutation of 0..<\(shape.count)")
        precondition(elements.count == shape.shapeProduct, "\(elements.count) elements for shape \(shape)")
        let strides = rowMajorStrides(shape)
        return offsets(shape: permutation.map { shape[$0] }, strides: permutation.map { strides[$0] }).map { elements[$0] }
    }

    /// The strides of a row-major tensor of `shape` (1 for the last dimension).
    public static func rowMajorStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        for d in stride(from: shape.count - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * shape[d + 1] }
        return strides
    }

    /// For each element of a tensor of `shape`, in row-major order, `Σ index[d] · strides[d]`: where a
    /// strided view (a transposition, a broadcast with stride 0) finds it.
    public static func offsets(shape: [Int], strides: [Int]) -> [Int] {
        let rank = shape.count
        var result = [Int](repeating: 0, count: shape.shapeProduct)
        var index = [Int](repeating: 0, count: rank)
        var offset = 0
        for i in result.indices {
            result[i] = offset
            var d = rank - 1
            while d >= 0 {
                index[d] += 1
                offset += strides[d]
                if index[d] < shape[d] { break }
                offset -= index[d] * strides[d]
                index[d] = 0
                d -= 1
            }
        }
        return result
    }

    /// The elements `range` along `axis` (already normalised to `0..<rank`, the range inside the dimension).
    public static func slice(_ x: Tensor, axis: Int, range: Range<Int>) -> Tensor {
        precondition(axis >= 0 && axis < x.rank && range.lowerBound >= 0 && range.upperBound <= x.shape[axis],
                     "slice \(range) on axis \(axis) does not fit \(x.shape)")
        var shape = x.shape
        shape[axis] = range.count
        let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[(axis + 1)...].reduce(1, *)
        let extent = x.shape[axis], block = range.count * inner
        return Tensor(shape: shape) { out in
            x.withUnsafeBufferPointer { source in
                for o in 0..<outer {
                    (out.base + o * block).update(from: source.base + (o * extent + range.lowerBound) * inner, count: block)
                }
            }
        }
    }

    /// The gradient of `slice` with respect to its input of `inputShape`: the output gradient in place, zeros elsewhere.
    public static func sliceBackward(inputShape: [Int], axis: Int, range: Range<Int>, outputGradient g: Tensor) -> Tensor {
        let outer = inputShape[..<axis].reduce(1, *), inner = inputShape[(axis + 1)...].reduce(1, *)
        let extent = inputShape[axis], block = range.count * inner
        var result = Tensor(shape: inputShape)
        result.withUnsafeMutableBufferPointer { out in
            g.withUnsafeBufferPointer { source in
                for o in 0..<outer {
                    (out.baseAddress! + (o * extent + range.lowerBound) * inner).update(from: source.baseAddress! + o * block, count: block)
                }
            }
        }
        return result
    }

    /// The permutation that undoes `permutation` (for the gradient of a transpose).
    public static func inversePermutation(_ permutation: [Int]) -> [Int] {
        var inverse = [Int](repeating: 0, count: permutation.count)
        for (i, p) in permutation.enumerated() { inverse[p] = i }
        return inverse
    }
}
