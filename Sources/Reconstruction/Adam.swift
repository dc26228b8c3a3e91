import Foundation

/// Adam (Kingma & Ba, ICLR 2015) over one flat array of variables.
public struct Adam: Codable, Sendable, Equatable {
    /// Step size.
    public var learningRate: Float
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    private var m: [Float]
    private var v: [Float]
    private var step = 0

    /// An optimiser for `count` variables.
    public init(count: Int, learningRate: Float) {
        self.learningRate = learningRate
        m = [Float](repeating: 0, count: count)
        v = [Float](repeating: 0, count: count)
    }

    /// Applies one update to `x` with gradient `g`.
    public mutating func update(_ x: inout [Float], gradient g: [Float]) {
        precondition(x.count == m.count && g.count == m.count, "Adam over \(m.count) variables got \(x.count) values and \(g.count) gradients")
        step += 1
        let c1 = 1 - powf(beta1, Float(step)), c2 = 1 - powf(beta2, Float(step))
        let (b1, b2, lr, eps) = (beta1, beta2, learningRate, epsilon)
        m.withUnsafeMutableBufferPointer { m in
            v.withUnsafeMutableBufferPointer { v in
                x.withUnsafeMutableBufferPointer { x in
                    g.withUnsafeBufferPointer { g in
                        for i in 0..<x.count {
                            m[i] = b1 * m[i] + (1 - b1) * g[i]
                            v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
                            x[i] -= lr * (m[i] / c1) / ((v[i] / c2).squareRoot() + eps)
                        }
                    }
                }
            }
        }
    }
}
