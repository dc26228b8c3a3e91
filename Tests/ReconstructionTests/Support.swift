import XCTest
import Graph
import Quantization
import Reconstruction
import TensorKernels

/// Seeded test data (SeededGenerator through `Reconstruction.SeededGenerator`).
struct TestData {
    var rng: SeededGenerator
    init(seed: UInt64) { rng = SeededGenerator(seed: seed) }

    mutating func uniform(_ lo: Float, _ hi: Float) -> Float { Float.random(in: lo...hi, using: &rng) }

    /// A standard normal draw (Box-Muller).
    mutating func normal() -> Float {
        let u1 = Double.random(in: Double.leastNonzeroMagnitude..<1, using: &rng), u2 = Double.random(in: 0..<1, using: &rng)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }

    mutating func normals(_ count: Int, std: Float = 1) -> [Float] { (0..<count).map { _ in normal() * std } }

    mutating func tensor(_ shape: [Int], std: Float = 1) -> Tensor { Tensor(shape: shape, data: normals(shape.shapeProduct, std: std)) }
}

/// A Conv node reading `input` with weight `w` and bias `b`.
func convNode(_ name: String, _ input: String, _ w: String, _ b: String, _ output: String, kernel: Int, pad: Int) -> Node {
    let window = WindowGeometry(kernel: (kernel, kernel), pads: (pad, pad, pad, pad))
    return Node(name: name, op: .conv(Conv2DParameters(window: window)), inputs: [input, w, b], outputs: [output])
}

/// A unit graph `x -> Conv 3x3 (pad 1, w1, b1) -> Relu -> Conv 1x1 (w2, b2) -> y` for inputs of `inputShape`
/// (batch first).
func convReluConvGraph(inputShape: [Int], shapes: [[Int]], weights: [[Float]], biases: [[Float]]) -> Graph {
    let (h, w) = (inputShape[2], inputShape[3])
    return Graph(
        name: "unit", inputs: [ValueInfo(name: "x", dimensions: [nil, inputShape[1], h, w])],
        outputs: [ValueInfo(name: "y", dimensions: [nil, shapes[1][0], h, w])],
        nodes: [convNode("conv1", "x", "w1", "b1", "c1", kernel: 3, pad: 1),
                Node(name: "relu1", op: .relu, inputs: ["c1"], outputs: ["r1"]),
                convNode("conv2", "r1", "w2", "b2", "y", kernel: 1, pad: 0)],
        initializers: ["w1": Tensor(shape: shapes[0], data: weights[0]), "b1": Tensor(shape: [shapes[0][0]], data: biases[0]),
                       "w2": Tensor(shape: shapes[1], data: weights[1]), "b2": Tensor(shape: [shapes[1][0]], data: biases[1])])
}

/// The rectified sigmoid in Double.
func hDouble(_ a: Double) -> Double {
    min(max(1 / (1 + exp(-a)) * 1.2 - 0.1, 0), 1)
}

/// `|actual - expected| <= tolerance * max(|expected|, floor)`; returns the relative error measured.
@discardableResult
func relativeError(_ actual: Double, _ expected: Double, floor: Double) -> Double {
    abs(actual - expected) / max(abs(expected), floor)
}

/// A stride-1 NCHW convolution with symmetric zero padding, in Double.
func conv2dDouble(_ x: [Double], _ xShape: [Int], _ w: [Double], _ wShape: [Int], _ b: [Double], pad: Int) -> (values: [Double], shape: [Int]) {
    let (n, c, h, wd) = (xShape[0], xShape[1], xShape[2], xShape[3])
    let (o, k) = (wShape[0], wShape[2])
    precondition(wShape[1] == c && wShape[3] == k)
    let oh = h + 2 * pad - k + 1, ow = wd + 2 * pad - k + 1
    var y = [Double](repeating: 0, count: n * o * oh * ow)
    for ni in 0..<n {
        for oc in 0..<o {
            for i in 0..<oh {
                for j in 0..<ow {
                    var acc = b[oc]
                    for ic in 0..<c {
                        for ki in 0..<k {
                            let r = i + ki - pad
                            guard r >= 0 && r < h else { continue }
                            for kj in 0..<k {
                                let col = j + kj - pad
                                guard col >= 0 && col < wd else { continue }
                                acc += x[((ni * c + ic) * h + r) * wd + col] * w[((oc * c + ic) * k + ki) * k + kj]
                            }
                        }
                    }
                    y[((ni * o + oc) * oh + i) * ow + j] = acc
                }
            }
        }
    }
    return (y, [n, o, oh, ow])
}

/// BRECQ's lp loss in Double: sum over channels, mean over batch and positions.
func lpDouble(_ y: [Double], _ t: [Double], shape: [Int], p: Double) -> Double {
    let positions = shape.count > 2 ? Array(shape[2...]).reduce(1, *) : 1
    var total = 0.0
    for i in y.indices { total += pow(abs(y[i] - t[i]), p) }
    return total / Double(shape[0] * positions)
}
