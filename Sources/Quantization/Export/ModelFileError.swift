/// Why a `.rapq` file could not be written or read back.
public enum ModelFileError: Error, CustomStringConvertible, Equatable {
    /// The bytes do not start with the `.rapq` magic: not a file this tool wrote.
    case notARAPQFile(found: [UInt8])
    /// The file was written by a format version this build cannot read.
    case unsupportedVersion(found: UInt32, supported: ClosedRange<UInt32>)
    /// The file ends before the header, the manifest or the payload it announces.
    case truncated(part: String, expectedBytes: Int, availableBytes: Int)
    /// The JSON manifest fails its checksum, does not parse, or contradicts itself.
    case corruptedManifest(reason: String)
    /// The binary payload (graph and packed codes) fails its checksum or does not decode.
    case corruptedPayload(reason: String)
    /// A weight code lies outside its grid, so it cannot be packed at the grid's bit width.
    case codeOutOfRange(layer: String, index: Int, code: Int, range: ClosedRange<Int>)
    /// The network cannot be represented in the format (e.g. a layer whose node is missing from the graph).
    case unrepresentable(reason: String)
    /// The file could not be read.
    case unreadable(path: String, reason: String)

    public var description: String {
        switch self {
        case .notARAPQFile(let found):
            let hex = found.map { String($0, radix: 16) }.joined(separator: " ")
            return "not a .rapq quantized-model file (first bytes: \(hex.isEmpty ? "none" : hex)); pass a file written by `rapq quantize`"
        case .unsupportedVersion(let found, let supported):
            return "the .rapq file has format version \(found), this build reads versions \(supported.lowerBound)-\(supported.upperBound); re-quantize the model or use a matching rapq release"
        case .truncated(let part, let expected, let available):
            return "the .rapq file is truncated: its \(part) needs \(expected) bytes but only \(available) remain; the file was cut short (copy it again or re-quantize)"
        case .corruptedManifest(let reason):
            return "the .rapq file's manifest is corrupted: \(reason); re-quantize the model or restore the file from a copy"
        case .corruptedPayload(let reason):
            return "the .rapq file's payload is corrupted: \(reason); re-quantize the model or restore the file from a copy"
        case .codeOutOfRange(let layer, let index, let code, let range):
            return "layer '\(layer)' weight code #\(index) is \(code), outside its grid \(range.lowerBound)...\(range.upperBound); the network is inconsistent (a bug in the stage that produced it)"
        case .unrepresentable(let reason):
            return "the network cannot be saved: \(reason)"
        case .unreadable(let path, let reason):
            return "cannot read '\(path)': \(reason)"
        }
    }
}
