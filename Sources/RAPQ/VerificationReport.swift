import Foundation

/// What `rapq verify` establishes about a quantized network: the static power-of-two checks, and on data,
/// that the integer-only engine computes what the simulation reports.
public struct VerificationReport: Sendable {
    /// Every check, static ones first.
    public var checks: [VerificationCheck]

    /// Whether every check passed.
    public var passed: Bool { checks.allSatisfy(\.passed) }
    /// Whether the integer engine was run against the simulation (only with data).
    public var integerEngineChecked = false

    /// Verifies `network`; with `data`, also compares the integer engine with the simulation on it.
    public init(network: QuantizedNetwork, data: Tensor?, batchSize: Int = 16) {
        checks = staticChecks(of: network)
        guard let data else { return }
        integerEngineChecked = true
        let isPowerOfTwo = checks.prefix(3).allSatisfy(\.passed)
        guard isPowerOfTwo else {
            checks.append(VerificationCheck(name: "integer engine equals simulation", passed: false,
                                            detail: "not run: the integer engine needs power-of-two scales and integer zero points"))
            return
        }
        do {
            let comparison = try EngineComparison(network: network, data: data, batchSize: batchSize)
            let islands = try IntegerEngine(network).floatSteps.count
            let engineName = islands == 0 ? "integer engine" : "integer engine (with \(islands) Float LayerNormalization step(s))"
            checks.append(VerificationCheck(
                name: "\(engineName) equals simulation (top-1 on every sample)", passed: comparison.top1Mismatches == 0,
                detail: "\(comparison.samples - comparison.top1Mismatches) of \(comparison.samples) samples agree"))
            checks.append(VerificationCheck(
                name: "activation codes: >= 99.9% identical, the rest within 1 LSB", passed: comparison.identicalFraction >= 0.999 && comparison.maxCodeDifference <= 1,
                detail: String(format: "%.4f%% of %d codes identical, largest difference %d LSB", 100 * comparison.identicalFraction, comparison.codes, comparison.maxCodeDifference)))
        } catch {
            checks.append(VerificationCheck(name: "integer engine equals simulation", passed: false, detail: "\(error)"))
        }
    }

    /// The report as lines for a terminal.
    public var text: String {
        var lines = checks.map { "\($0.passed ? "PASS" : "FAIL")  \($0.name): \($0.detail)" }
        if !integerEngineChecked {
            lines.append("SKIP  integer engine equals simulation: not run (pass data, e.g. `rapq verify MODEL --data x.npy`)")
        }
        if !passed {
            lines.append("NOT verified")
        } else {
            lines.append(integerEngineChecked ? "verified: every check passed"
                                              : "verified: every static check passed; the integer-only claim was not checked (no data)")
        }
        return lines.joined(separator: "\n")
    }
}

/// The integer engine and the simulation run side by side on the same samples.
public struct EngineComparison: Sendable {
    /// Samples compared.
    public var samples = 0
    /// Samples whose top-1 class differs.
    public var top1Mismatches = 0
    /// Activation codes compared (all sites, all samples).
    public var codes = 0
    /// Fraction of identical codes.
    public var identicalFraction: Double { codes == 0 ? 1 : Double(identical) / Double(codes) }
    /// The largest code difference seen.
    public var maxCodeDifference = 0
    private var identical = 0

    /// Runs both engines on `data` in batches and compares logits' top-1 and every activation site's codes.
    public init(network: QuantizedNetwork, data: Tensor, batchSize: Int) throws {
        try checkInput(data, of: network.graph, batchSize: batchSize)
        let engine = try IntegerEngine(network)
        let simulation = try Simulation(network)
        let sites = network.activations
        for slice in data.batches(of: batchSize) {
            let integerRun = try engine.run(slice)
            let simulated = try simulation.run(slice, keep: Set(sites.keys))
            let a = try ClassificationMetrics(logits: integerRun.logits, reference: simulated[network.graph.outputs[0].name]!)
            samples += a.samples
            top1Mismatches += a.samples - Int((a.agreement ?? 0) * Double(a.samples) + 0.5)
            for (name, q) in sites {
                guard let integerCodes = integerRun.codes[name], let values = simulated[name] else { continue }
                let s = q.scales[0], z = q.zeroPoints[0]
                for (code, value) in zip(integerCodes, values.data) {
                    let exact = (value / s).rounded(.toNearestOrEven) + z
                    // A NaN or out-of-range simulated value cannot be a code: the largest difference.
                    let d = exact.isFinite && abs(exact) < 1e9 ? abs(Int(code) - Int(exact)) : Int(Int32.max)
                    codes += 1
                    if d == 0 { identical += 1 }
                    maxCodeDifference = Swift.max(maxCodeDifference, d)
                }
            }
        }
    }
}
