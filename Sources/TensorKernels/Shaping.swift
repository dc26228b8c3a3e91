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
        let rank = shape.count
        precondition(permutation.sorted() == Array(0..<rank), "\(permutation) is not a permutation of 0..<\(rank)")
        precondition(elements.count == shape.shapeProduct, "\(elements.count) elements for shape \(shape)")
        guard rank > 1, !elements.isEmpty else { return elements }
        let outShape = permutation.map { shape[$0] }
        var inputStrides = [Int](repeating: 1, count: rank)
        for d in stride(from: rank - 2, through: 0, by: -1) { inputStrides[d] = inputStrides[d + 1] * shape[d + 1] }
        // The input stride of each output dimension; the innermost output dimension is walked in one loop.
        let strides = permutation.map { inputStrides[$0] }
        let inner = outShape[rank - 1], innerStride = strides[rank - 1]
        var result: [Element] = []
        result.reserveCapacity(elements.count)
        elements.withUnsafeBufferPointer { source in
            var index = [Int](repeating: 0, count: rank - 1)
            for _ in 0..<(elements.count / inner) {
                var offset = 0
                for d in 0..<(rank - 1) { offset += index[d] * strides[d] }
                for j in 0..<inner { result.append(source[offset + j * innerStride]) }
                var d = rank - 2
                while d >= 0 {
                    index[d] += 1
                    if index[d] < outShape[d] { break }
                    index[d] = 0
                    d -= 1
                }
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
