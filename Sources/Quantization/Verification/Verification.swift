import ONNX
/// One property `rapq verify` checks, with what it found.
public struct VerificationCheck: Equatable, Codable, Sendable {
    /// What is checked.
    public var name: String
    /// Whether it holds.
    public var passed: Bool
    /// The evidence: counts, and the first offenders when it fails.
    public var detail: String

    /// A check result from its parts.
    public init(name: String, passed: Bool, detail: String) {
        self.name = name
        self.passed = passed
        self.detail = detail
    }
}

/// The static checks of a quantized network: that it is what a power-of-two integer datapath can run.
///
/// Every scale must be exactly `2^e` (its significand bits are zero: a bit-level test, not a tolerance),
/// every zero point a whole number inside its grid, every weight code inside its grid, and every bias
/// representable in int32 at scale `input scale * weight scale` (itself then a power of two). Then, what a
/// hand-made or damaged network could get wrong: every scale, zero point and bias finite; every grid as wide
/// as the bit widths the network declares (2-8 bits); every weight shape one its graph runs.
public func staticChecks(of network: QuantizedNetwork) -> [VerificationCheck] {
    var checks: [VerificationCheck] = []
    func check(_ name: String, _ offenders: [String], total: Int, unit: String) {
        let shown = offenders.prefix(5).joined(separator: "; ")
        checks.append(VerificationCheck(
            name: name, passed: offenders.isEmpty,
            detail: offenders.isEmpty ? "all \(total) \(unit) pass" : "\(offenders.count) of \(total) \(unit) fail, e.g. \(shown)"))
    }
    let layers = network.layers.values.sorted { $0.node < $1.node }
    let sites = network.activations.sorted { $0.key < $1.key }

    var bad: [String] = [], total = 0
    for layer in layers {
        for (c, s) in layer.weight.scales.enumerated() {
            total += 1
            if PowerOfTwo.exactExponent(s) == nil { bad.append("\(layer.node)[\(c)] scale \(s)") }
        }
    }
    check("weight scales are exact powers of two", bad, total: total, unit: "channels")

    bad = []
    for (name, q) in sites where PowerOfTwo.exactExponent(q.scales[0]) == nil { bad.append("\(name) scale \(q.scales[0])") }
    check("activation scales are exact powers of two", bad, total: sites.count, unit: "activation quantizers")

    bad = []; total = 0
    for layer in layers {
        for (c, z) in layer.weight.zeroPoints.enumerated() {
            total += 1
            if z.rounded() != z || z < Float(layer.weight.grid.qmin) || z > Float(layer.weight.grid.qmax) { bad.append("\(layer.node)[\(c)] zero point \(z)") }
        }
    }
    for (name, q) in sites {
        total += 1
        let z = q.zeroPoints[0]
        if z.rounded() != z || z < Float(q.grid.qmin) || z > Float(q.grid.qmax) { bad.append("\(name) zero point \(z)") }
    }
    check("zero points are integers inside their grid", bad, total: total, unit: "zero points")

    bad = []
    for layer in layers {
        let (lo, hi) = (Int32(layer.weight.grid.qmin), Int32(layer.weight.grid.qmax))
        if let i = layer.codes.firstIndex(where: { $0 < lo || $0 > hi }) { bad.append("\(layer.node) code \(layer.codes[i]) outside [\(lo), \(hi)]") }
    }
    check("weight codes lie inside their \(network.bits.weights)-bit (or first/last \(network.bits.firstLast)-bit) grids", bad, total: layers.count, unit: "layers")

    bad = []; total = 0
    for layer in layers {
        guard let input = network.activationQuantizer(for: layer.input) else { bad.append("\(layer.node) has no input quantizer"); continue }
        for c in 0..<layer.channels {
            total += 1
            let product = input.scales[0] * layer.weight.scales[c]
            let exact = Double(input.scales[0]) * Double(layer.weight.scales[c])
            let v = Double(layer.bias[c]) / exact
            if Double(product) != exact || PowerOfTwo.exactExponent(product) == nil && network.layers.values.allSatisfy({ $0.weight.exponents != nil }) {
                bad.append("\(layer.node)[\(c)] bias scale \(product) is not input scale x weight scale as a power of two")
            } else if abs(v.rounded()) > Double(Int32.max) {
                bad.append("\(layer.node)[\(c)] bias \(layer.bias[c]) saturates int32 at scale \(exact)")
            }
        }
    }
    check("bias scales equal input scale x weight scale, biases fit int32", bad, total: total, unit: "channels")

    bad = []; total = 0
    for layer in layers {
        for c in 0..<layer.channels {
            total += 1
            let values = [layer.weight.scales[c], layer.weight.zeroPoints[c], layer.bias[c]]
            if !values.allSatisfy(\.isFinite) || !(layer.weight.scales[c] > 0) { bad.append("\(layer.node)[\(c)] scale, zero point, bias \(values)") }
        }
    }
    for (name, q) in sites {
        total += 1
        if !(q.scales[0] > 0 && q.scales[0].isFinite && q.zeroPoints[0].isFinite) { bad.append("\(name) scale \(q.scales[0]), zero point \(q.zeroPoints[0])") }
    }
    check("scales are positive and finite, zero points and biases finite", bad, total: total, unit: "channels and activation quantizers")

    bad = []
    let declared = network.bits
    for (what, bits) in [("weights", declared.weights), ("activations", declared.activations), ("first/last", declared.firstLast)] where !(2...8).contains(bits) {
        bad.append("declared \(what) \(bits) bits")
    }
    let weightWidths: Set<Int> = [declared.weights, declared.firstLast]
    var activationWidths: Set<Int> = [declared.activations, declared.firstLast]
    if declared.residualInputs > 0 { activationWidths.insert(declared.residualInputs) }
    for layer in layers where !weightWidths.contains(layer.weight.grid.bits) { bad.append("\(layer.node) has a \(layer.weight.grid.bits)-bit grid") }
    for (name, q) in sites where !activationWidths.contains(q.grid.bits) { bad.append("\(name) has a \(q.grid.bits)-bit grid") }
    check("grids have the declared bit widths (W\(declared.weights)A\(declared.activations), first/last \(declared.firstLast))", bad,
          total: layers.count + sites.count + 3, unit: "grids and declarations")

    bad = []
    let nodes = Dictionary(network.graph.nodes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    for layer in layers {
        let kernel = nodes[layer.node].flatMap { $0.inputs.count > 1 ? network.graph.initializers[$0.inputs[1]]?.shape : nil }
        if layer.weightShape.shapeProduct != layer.codes.count || layer.weightShape.first != layer.channels || kernel != layer.weightShape {
            bad.append("\(layer.node) weight shape \(layer.weightShape) for \(layer.codes.count) codes, \(layer.channels) channels, graph weight \(kernel.map { "\($0)" } ?? "missing")")
        }
    }
    if bad.isEmpty {
        do { _ = try inferShapes(of: network.graph, batch: 1) } catch { bad.append("\(error)") }
    }
    check("weight shapes match their layers' kernels and the graph", bad, total: layers.count, unit: "layers")
    return checks
}
