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
}
