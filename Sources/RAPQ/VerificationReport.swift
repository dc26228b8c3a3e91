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
    /// The nodes the integer engine runs in Float between quantized tensors ("name (Op)"): non-empty for a
    /// hybrid model.
    public var floatSteps: [String] = []
    /// Whether every node has an integer kernel: `nil` when not established (no data, or the scales are not
    /// powers of two), `false` for a hybrid model or one the integer engine cannot run.
    public var integerOnly: Bool?
    /// Why the integer engine could not run the network (unsupported node, or a refusal at run time), when
    /// that is why `integerOnly` is false; a mismatch between the engines is a failed check instead.
    public var integerEngineError: String?
    /// A Float step the integer engine applies to the logits (a Softmax at the output), if any.
    public var floatOutputStep: String?

    /// Verifies `network`; with `data`, also compares the integer engine with the simulation on it
    /// (`progress(done, total)` after each batch of samples).
    public init(network: QuantizedNetwork, data: Tensor?, batchSize: Int = 16,
                progress: ((_ done: Int, _ total: Int) -> Void)? = nil) {
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
            let engine = try IntegerEngine(network)
            floatSteps = engine.floatSteps
            floatOutputStep = engine.floatOutputStep
            integerOnly = floatSteps.isEmpty
        } catch {
            integerOnly = false
            integerEngineError = "\(error)"
            checks.append(VerificationCheck(name: "integer engine equals simulation", passed: false, detail: "\(error)"))
            return
        }
        do {
            let comparison = try EngineComparison(network: network, data: data, batchSize: batchSize, progress: progress)
            let engineName = floatSteps.isEmpty ? "integer engine" : "integer engine (with \(floatSteps.count) Float step(s))"
            checks.append(VerificationCheck(
                name: "\(engineName) equals simulation (top-1 on every sample)", passed: comparison.top1Mismatches == 0,
                detail: "\(comparison.samples - comparison.top1Mismatches) of \(comparison.samples) samples agree"))
            checks.append(VerificationCheck(
                name: "activation codes: >= 99.9% identical, the rest within 1 LSB", passed: comparison.identicalFraction >= 0.999 && comparison.maxCodeDifference <= 1,
                detail: String(format: "%.4f%% of %d codes identical, largest difference %d LSB", 100 * comparison.identicalFraction, comparison.codes, comparison.maxCodeDifference)))
        } catch {
            integerOnly = false
            integerEngineError = "\(error)"
            checks.append(VerificationCheck(name: "integer engine equals simulation", passed: false, detail: "\(error)"))
        }
    }

    /// The report as lines for a terminal.
    public var text: String {
        var lines = checks.map { "\($0.passed ? "PASS" : "FAIL")  \($0.name): \($0.detail)" }
        if !integerEngineChecked {
            lines.append("SKIP  integer engine equals simulation: not run (pass data, e.g. `rapq verify MODEL --data x.npy`)")
        }
        if !floatSteps.isEmpty {
            let more = floatSteps.count > 3 ? ", ..." : ""
            lines.append("NOTE  integer-only: no: \(floatSteps.count) node(s) run in Float between quantized tensors "
                + "(\(floatSteps.prefix(3).joined(separator: ", "))\(more))")
        }
        if !passed {
            lines.append("NOT verified")
        } else if !integerEngineChecked {
            lines.append("verified: every static check passed; the integer-only claim was not checked (no data)")
        } else if floatSteps.isEmpty {
            lines.append("verified: every check passed")
        } else {
            lines.append("verified as a hybrid model: every check passed; \(floatSteps.count) node(s) run in Float, so it is not integer-only")
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

    /// Runs both engines on `data` in batches and compares logits' top-1 and every activation site's codes
    /// (`progress(done, total)` after each batch).
    public init(network: QuantizedNetwork, data: Tensor, batchSize: Int, progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws {
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
            progress?(samples, data.shape[0])
        }
    }
}
