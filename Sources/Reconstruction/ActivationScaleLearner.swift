import Foundation
import Quantization
import TensorKernels

/// Learns the scales of a unit's activation quantizers as continuous log2-scales `t` with the LSQ gradient
/// (Esser et al., "Learned Step Size Quantization", ICLR 2020). With `powerOfTwo` the forward pass uses
/// `s = 2^round(t)` and the rounding is passed straight through, so the scale is a power of two at every
/// step and at the end (METHOD §5.1, activations).
public struct ActivationScaleLearner {
    private let names: [String]
    private let initial: [QuantizerParameters]
    private var logScales: [Float]
    private var optimizer: Adam
    private let powerOfTwo: Bool
    private let evenZeroPoints: Set<String>

    /// A learner for `sites` (name and initial quantizer); the zero points of `evenZeroPoints` stay even when
    /// a scale change moves them (`ActivationSite.evenZeroPoint`).
    public init(sites: [(String, QuantizerParameters)], powerOfTwo: Bool, learningRate: Float, evenZeroPoints: Set<String> = []) {
        self.evenZeroPoints = evenZeroPoints
        names = sites.map(\.0)
        initial = sites.map(\.1)
        logScales = initial.map { Float(log2(Double($0.scales[0]))) }
        optimizer = Adam(count: sites.count, learningRate: learningRate)
        self.powerOfTwo = powerOfTwo
    }

    /// The current quantizers by site name.
    public var quantizers: [String: QuantizerParameters] {
        var result: [String: QuantizerParameters] = [:]
        for (i, name) in names.enumerated() {
            let q0 = initial[i]
            let s = powerOfTwo ? PowerOfTwo.value(Int(logScales[i].rounded(.toNearestOrEven))) : Float(exp2(Double(logScales[i])))
            let z = q0.zeroPoints[0] == 0 ? 0 : ScaleSearch.rescaledZeroPoint(q0.zeroPoints[0], from: q0.scales[0], to: s, grid: q0.grid,
                                                                                  even: evenZeroPoints.contains(name))
            result[name] = QuantizerParameters(grid: q0.grid, scales: [s], zeroPoints: [z])
        }
        return result
    }

    /// Turns `g` (gradient w.r.t. the fake-quantized tensor) into the gradient w.r.t. its input `x` by the
    /// straight-through estimator (zero where clamped) and returns the LSQ gradient w.r.t. the scale.
    public static func straightThrough(_ x: Tensor, _ q: QuantizerParameters, _ g: inout Tensor) -> Float {
        let s = q.scales[0], z = q.zeroPoints[0], lo = Float(q.grid.qmin), hi = Float(q.grid.qmax)
        var ds: Float = 0
        x.withUnsafeBufferPointer { xs in
            g.withUnsafeMutableBufferPointer { gs in
                for i in 0..<xs.count {
                    let v = xs[i] / s, r = v.rounded(.toNearestOrEven), code = r + z
                    if code < lo { ds += gs[i] * (lo - z); gs[i] = 0 }
                    else if code > hi { ds += gs[i] * (hi - z); gs[i] = 0 }
                    else { ds += gs[i] * (r - v) }
                }
            }
        }
        return ds
    }

    /// One Adam step from scale gradients by site name: `dL/dt = dL/ds * s * ln 2`.
    public mutating func step(_ scaleGradients: [String: Float], iteration: Int, of total: Int) {
        let current = quantizers
        let gradient = names.map { name in (scaleGradients[name] ?? 0) * current[name]!.scales[0] * Float(M_LN2) }
        optimizer.update(&logScales, gradient: gradient)
    }
}
