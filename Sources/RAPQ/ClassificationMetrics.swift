import Foundation

/// Accuracy of a classifier's logits: top-1/top-5 against labels, and agreement with reference logits.
public struct ClassificationMetrics: Equatable, Codable, Sendable {
    /// Number of samples scored.
    public var samples: Int
    /// Fraction whose highest logit is the label (nil without labels).
    public var top1: Double?
    /// Fraction whose label is among the five highest logits (nil without labels or with fewer than 5 classes).
    public var top5: Double?
    /// Fraction whose top-1 class equals the reference's (nil without reference).
    public var agreement: Double?
    /// Mean KL divergence KL(reference softmax || softmax), in nats (nil without reference).
    public var meanKL: Double?

    /// Scores `logits` ([samples, classes]) against optional labels and optional reference logits.
    public init(logits: Tensor, labels: [Int64]? = nil, reference: Tensor? = nil) {
        let n = logits.shape[0], k = logits.count / Swift.max(n, 1)
        samples = n
        func row(_ t: Tensor, _ i: Int) -> ArraySlice<Float> { t.data[i * k..<(i + 1) * k] }
        func argmax(_ r: ArraySlice<Float>) -> Int { r.indices.max { r[$0] < r[$1] || (r[$0] == r[$1] && $0 > $1) }! - r.startIndex }
        if let labels {
            var hit1 = 0, hit5 = 0
            for i in 0..<n {
                let r = row(logits, i), label = Int(labels[i])
                if argmax(r) == label { hit1 += 1 }
                let better = label >= 0 && label < k ? r.filter { $0 > r[r.startIndex + label] }.count : k
                if better < 5 { hit5 += 1 }
            }
            top1 = Double(hit1) / Double(n)
            top5 = k >= 5 ? Double(hit5) / Double(n) : nil
        }
        if let reference {
            var agree = 0, kl = 0.0
            for i in 0..<n {
                let p = row(reference, i), q = row(logits, i)
                if argmax(p) == argmax(q) { agree += 1 }
                let lp = Self.logSoftmax(p), lq = Self.logSoftmax(q)
                kl += zip(lp, lq).reduce(0) { $0 + exp($1.0) * ($1.0 - $1.1) }
            }
            agreement = Double(agree) / Double(n)
            meanKL = kl / Double(n)
        }
    }

    private static func logSoftmax(_ r: ArraySlice<Float>) -> [Double] {
        let m = Double(r.max() ?? 0)
        let logSum = log(r.reduce(0.0) { $0 + exp(Double($1) - m) }) + m
        return r.map { Double($0) - logSum }
    }

    /// One line for a terminal.
    public var summary: String {
        var parts = ["samples \(samples)"]
        if let top1 { parts.append(String(format: "top-1 %.2f%%", 100 * top1)) }
        if let top5 { parts.append(String(format: "top-5 %.2f%%", 100 * top5)) }
        if let agreement { parts.append(String(format: "top-1 agreement with FP32 %.2f%%", 100 * agreement)) }
        if let meanKL { parts.append(String(format: "mean KL to FP32 %.4f", meanKL)) }
        return parts.joined(separator: ", ")
    }
}
