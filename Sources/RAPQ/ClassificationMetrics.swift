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
    ///
    /// Throws `MetricsError` for no samples or classes, labels of another count or outside `0..<classes`,
    /// and reference logits of another shape.
    public init(logits: Tensor, labels: [Int64]? = nil, reference: Tensor? = nil) throws {
        let n = logits.rank >= 1 ? logits.shape[0] : 0
        guard n > 0 else { throw MetricsError.noSamples }
        let k = logits.count / n
        guard k > 0, logits.count == n * k else { throw MetricsError.noClasses(shape: logits.shape) }
        if let labels {
            guard labels.count == n else { throw MetricsError.labelCount(labels: labels.count, samples: n) }
            if let bad = labels.firstIndex(where: { $0 < 0 || $0 >= Int64(k) }) {
                throw MetricsError.labelOutOfRange(index: bad, label: labels[bad], classes: k)
            }
        }
        if let reference, reference.count != logits.count || reference.shape.first != n {
            throw MetricsError.referenceShape(reference: reference.shape, logits: logits.shape)
        }
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

/// Why logits could not be scored.
public enum MetricsError: Error, CustomStringConvertible, Equatable {
    /// There are no samples to score.
    case noSamples
    /// The model's output has no classes (or is not [samples, classes]).
    case noClasses(shape: [Int])
    /// The labels are not one per sample.
    case labelCount(labels: Int, samples: Int)
    /// A label is not a class index of the model.
    case labelOutOfRange(index: Int, label: Int64, classes: Int)
    /// The reference logits do not have the model's output shape.
    case referenceShape(reference: [Int], logits: [Int])

    public var description: String {
        switch self {
        case .noSamples:
            return "there are 0 samples to score; give data with at least one sample"
        case .noClasses(let shape):
            return "the model's output has shape \(shape), which holds no classes to score; evaluate a classifier whose output is [samples, classes] with at least one class"
        case .labelCount(let labels, let samples):
            return "the labels hold \(labels) entries for \(samples) samples; give one label per sample"
        case .labelOutOfRange(let index, let label, let classes):
            return "label \(label) at index \(index) is not a class of the model, whose \(classes) classes are 0 to \(classes - 1); check the labels file"
        case .referenceShape(let reference, let logits):
            return "the reference model's output has shape \(reference) but the model's has \(logits); compare models with the same classes"
        }
    }
}
