import Foundation
import TensorKernels

/// Images decoded and preprocessed into one batch, row i from `files[i]`.
public struct ImageBatch: Sendable {
    /// (N, 3, H, W) or (N, H, W, 3) as the preprocessing's layout says.
    public var tensor: Tensor
    /// The file of each row, relative to the folder.
    public var files: [String]
    /// Class indices from the folder's class layout, one per row; nil without that layout.
    public var classLabels: [Int64]?
    /// Images left out as unreadable (with `skipBadImages`): file and reason.
    public var skipped: [(file: String, reason: String)]
}
