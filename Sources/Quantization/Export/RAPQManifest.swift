/// The JSON part of a `.rapq` file: everything about a `QuantizedNetwork` except the graph's bytes and the
/// packed weight codes, which live in the binary payload at the byte ranges given here.
///
/// Every float is stored so that it reads back bit for bit: a power-of-two scale as its integer exponent,
/// any other float as its IEEE-754 bit pattern (`Float(bitPattern:)`). JSON's decimal numbers are never used
/// for floats.
struct RAPQManifest: Codable, Equatable {
    /// The method that produced the network (`rtn`, `pot-mse`, `rapq`, ...).
    var method: String
    /// The bit widths asked for.
    var bits: BitWidths
    /// Reconstruction units, in network order.
    var units: [ReconstructionUnit]
    /// Activation quantizers, sorted by tensor name.
    var activations: [StoredActivation]
    /// Quantized layers, sorted by node name.
    var layers: [StoredLayer]
    /// Where the ONNX-serialized graph lies in the payload.
    var graph: ByteRange
    /// Total payload size in bytes.
    var payloadBytes: Int
    /// CRC-32 of the payload.
    var payloadCRC32: UInt32
}

/// A byte range inside the payload.
struct ByteRange: Codable, Equatable {
    /// First byte, counted from the start of the payload.
    var offset: Int
    /// Number of bytes.
    var length: Int
}

/// One activation quantizer.
struct StoredActivation: Codable, Equatable {
    /// The quantized tensor.
    var tensor: String
    /// Its quantizer.
    var quantizer: StoredQuantizer
}

/// One quantized layer, without its codes.
struct StoredLayer: Codable, Equatable {
    /// The layer's node in the graph.
    var node: String
    /// The activation tensor it reads.
    var input: String
    /// Weight shape, output channels first.
    var weightShape: [Int]
    /// Per-channel scales and zero points.
    var weight: StoredQuantizer
    /// The float bias per output channel, as bit patterns.
    var biasBits: [UInt32]
    /// The packed codes (`ceil(count * bits / 8)` bytes).
    var codes: ByteRange
}

/// Scales and zero points in an exact form: `exponents` when every scale is `2^e`, else `scaleBits`;
/// `zeroPoints` when every zero point is a whole number (and not -0), else `zeroPointBits`.
struct StoredQuantizer: Codable, Equatable {
    var grid: QuantizationGrid
    var exponents: [Int]?
    var scaleBits: [UInt32]?
    var zeroPoints: [Int]?
    var zeroPointBits: [UInt32]?

    init(_ q: QuantizerParameters) {
        grid = q.grid
        if let e = q.exponents { exponents = e } else { scaleBits = q.scales.map(\.bitPattern) }
        let whole = q.zeroPoints.allSatisfy(Self.isWholeNumber)
        if whole { zeroPoints = q.zeroPoints.map { Int($0) } } else { zeroPointBits = q.zeroPoints.map(\.bitPattern) }
    }

    /// Whether `z` is an integer that `Float(Int(z))` gives back bit for bit (so not -0, NaN or beyond 2^24).
    private static func isWholeNumber(_ z: Float) -> Bool {
        guard z.isFinite, z.magnitude < 16_777_216 else { return false }
        return Float(Int(z)).bitPattern == z.bitPattern
    }

    /// The quantizer, after checking that it is complete and has `count` channels (nil: any count).
    func parameters(count: Int?, owner: String) throws -> QuantizerParameters {
        guard (1...16).contains(grid.bits) else {
            throw ModelFileError.corruptedManifest(reason: "\(owner) has a \(grid.bits)-bit grid (1 to 16 expected)")
        }
        let scales: [Float]
        switch (exponents, scaleBits) {
        case (let e?, nil):
            guard e.allSatisfy({ (-126...127).contains($0) }) else {
                throw ModelFileError.corruptedManifest(reason: "\(owner) has a scale exponent outside the Float range")
            }
            scales = e.map(PowerOfTwo.value)
        case (nil, let b?): scales = b.map(Float.init(bitPattern:))
        default: throw ModelFileError.corruptedManifest(reason: "\(owner) must have exactly one of 'exponents' and 'scaleBits'")
        }
        let zeros: [Float]
        switch (zeroPoints, zeroPointBits) {
        case (let z?, nil):
            guard z.allSatisfy({ $0.magnitude < 16_777_216 }) else {
                throw ModelFileError.corruptedManifest(reason: "\(owner) has a zero point beyond 2^24")
            }
            zeros = z.map(Float.init)
        case (nil, let b?): zeros = b.map(Float.init(bitPattern:))
        default: throw ModelFileError.corruptedManifest(reason: "\(owner) must have exactly one of 'zeroPoints' and 'zeroPointBits'")
        }
        guard scales.count == zeros.count, count.map({ $0 == scales.count }) ?? !scales.isEmpty else {
            throw ModelFileError.corruptedManifest(
                reason: "\(owner) has \(scales.count) scales and \(zeros.count) zero points, expected \(count.map(String.init) ?? "at least one") of each")
        }
        return QuantizerParameters(grid: grid, scales: scales, zeroPoints: zeros)
    }
}
