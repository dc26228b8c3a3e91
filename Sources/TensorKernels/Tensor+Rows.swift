extension Tensor {
    /// The samples at `indices` along the first dimension, in that order (mini-batch gathering).
    public func rows(_ indices: [Int]) -> Tensor {
        let per = shape.isEmpty || shape[0] == 0 ? 0 : count / shape[0]
        var out = [Float](repeating: 0, count: indices.count * per)
        data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for (r, i) in indices.enumerated() {
                    precondition(i >= 0 && i < shape[0], "row \(i) out of range")
                    dst.baseAddress!.advanced(by: r * per).update(from: src.baseAddress!.advanced(by: i * per), count: per)
                }
            }
        }
        return Tensor(shape: [indices.count] + shape.dropFirst(), data: out)
    }

    /// The samples `range` along the first dimension.
    public func rows(_ range: Range<Int>) -> Tensor {
        let per = shape.isEmpty || shape[0] == 0 ? 0 : count / shape[0]
        return Tensor(shape: [range.count] + shape.dropFirst(), data: Array(data[range.lowerBound * per..<range.upperBound * per]))
    }
}
