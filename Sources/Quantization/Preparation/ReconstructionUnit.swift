import Graph

/// A piece of the network reconstructed as one: a residual block, an inverted residual, or one layer.
public struct ReconstructionUnit: Equatable, Codable, Sendable {
    /// The structural kind of a unit, found from the graph (never from layer names).
    public enum Kind: String, Codable, Sendable {
        /// One Conv or Gemm with its fused activation.
        case layer
        /// The convolutions between a tensor and the Add that joins it back (with or without a shortcut conv).
        case residualBlock
        /// Expand 1x1 (optional), depthwise, linear project 1x1, without a residual Add.
        case invertedResidual
    }

    /// The unit's kind.
    public var kind: Kind
    /// Names of the unit's nodes in graph order (layers, activations, Add).
    public var nodes: [String]
    /// Names of the Conv/Gemm nodes among them, in graph order.
    public var layers: [String]
    /// Tensors the unit reads from outside (activations, not weights).
    public var inputs: [String]
    /// The tensor the unit produces.
    public var output: String
    /// The layer whose folded BN's gammas give the unit's loss exponent (the last BN of the main branch),
    /// nil if no layer of the unit had a BN.
    public var lossLayer: String?

    /// A short human-readable name: the kind and the first layer.
    public var name: String { "\(kind.rawValue)(\(layers.first ?? "?"))" }
}
