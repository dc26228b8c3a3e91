import TensorKernels

/// What one integer run returns: the dequantized logits and, for inspection, the codes of every
/// activation site it passed.
public struct IntegerRun: Sendable {
    /// The graph's first output as Float: `acc * 2^(e_x + e_w[c])` of the last layer (or `(q - z) * 2^e`
    /// if the output is itself on a grid).
    public var logits: Tensor
    /// The integer codes of each activation site, by tensor name (empty when not recorded).
    public var codes: [String: [Int32]]
    /// The shape of each recorded site.
    public var shapes: [String: [Int]]

    /// A run's result from its parts.
    public init(logits: Tensor, codes: [String: [Int32]], shapes: [String: [Int]]) {
        self.logits = logits
        self.codes = codes
        self.shapes = shapes
    }
}
