/// Runs element-wise kernels over large tensors in parallel chunks. The kernel is called once per
/// chunk with raw pointers, so its inner loop is a plain loop the compiler can vectorise.
public enum ElementMap {
    /// Below this many elements a kernel runs on the calling thread.
    static let parallelThreshold = 1 << 15

    /// `body(offset, count)` over `0..<count` in chunks of at least `parallelThreshold / 2` elements.
    public static func forEachChunk(_ count: Int, _ body: (Int, Int) -> Void) {
        if count < parallelThreshold {
            if count > 0 { body(0, count) }
            return
        }
        Parallel.forEachChunk(count, maxChunks: Swift.min(16, count / (parallelThreshold / 2))) { range in
            body(range.lowerBound, range.count)
        }
    }

    /// A tensor shaped like `x` whose chunk `[i, i+n)` is written by `body(x + i, y + i, n)`.
    public static func unary(_ x: Tensor, _ body: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
        Tensor(shape: x.shape) { out in
            x.withUnsafeBufferPointer { input in
                let X = input.base, Y = out.base
                forEachChunk(x.count) { offset, n in body(X + offset, Y + offset, n) }
            }
        }
    }

    /// A tensor shaped like `x` whose chunk is written by `body(x + i, g + i, y + i, n)`; `x` and `g`
    /// must have the same element count (a value and the gradient flowing back to it).
    static func binary(_ x: Tensor, _ g: Tensor,
                       _ body: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
        precondition(x.count == g.count, "element-wise operands \(x.shape) and \(g.shape) differ")
        return Tensor(shape: x.shape) { out in
            x.withUnsafeBufferPointer { input in
                g.withUnsafeBufferPointer { gradient in
                    let X = input.base, G = gradient.base, Y = out.base
                    forEachChunk(x.count) { offset, n in body(X + offset, G + offset, Y + offset, n) }
                }
            }
        }
    }
}
