import Foundation
import Graph

/// The size limit shared by shape inference and execution: no tensor (an input, an intermediate activation
/// of one batch) may hold more than `maximumElements` values, as no initializer may (`TensorDecoder`).
/// Checking shapes against it with overflow-checked products keeps hostile dimensions (a pad of 2^30, a
/// batch of 2^40) from overflowing `Int` arithmetic or attempting a huge allocation.
public enum ShapeLimits {
    /// The largest element count of one tensor: 2^31 (8 GiB as float32).
    public static let maximumElements = 1 << 31

    /// The most bytes one tensor of a running batch may need: half of the physical memory (`checkInput`).
    public static var memoryBytes: Int { Int(clamping: ProcessInfo.processInfo.physicalMemory / 2) }

    /// The element count of `shape`; throws `ShapeInferenceError.tooLarge` for a negative dimension or a
    /// count above `maximumElements` (an overflowing product included).
    @discardableResult
    public static func check(_ shape: [Int], tensor: String) throws -> Int {
        let tooLarge = ShapeInferenceError.tooLarge(tensor: tensor, shape: shape, limit: maximumElements)
        guard shape.allSatisfy({ $0 >= 0 }) else { throw tooLarge }
        if shape.contains(0) { return 0 }
        var count = 1
        for d in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, product <= maximumElements else { throw tooLarge }
            count = product
        }
        return count
    }
}
