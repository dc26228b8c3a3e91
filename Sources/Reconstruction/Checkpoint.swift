import DataIO
import Foundation
import Quantization

/// Why a checkpoint could not be used.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    /// `--resume` named a folder without a checkpoint.
    case missing(folder: String)
    /// The checkpoint's files are damaged or from another version.
    case corrupted(folder: String, reason: String)
    /// The checkpoint belongs to another model, data set or configuration.
    case foreign(folder: String)
    /// The checkpoint could not be written.
    case unwritable(folder: String, reason: String)

    public var description: String {
        switch self {
        case .missing(let folder):
            return "no checkpoint in '\(folder)'; start without --resume (use --checkpoint-dir to write one)"
        case .corrupted(let folder, let reason):
            return "the checkpoint in '\(folder)' is damaged (\(reason)); delete it and start again"
        case .foreign(let folder):
            return "the checkpoint in '\(folder)' was made for another model, calibration set or set of options; resume with exactly the same command, or use an empty folder"
        case .unwritable(let folder, let reason):
            return "cannot write a checkpoint to '\(folder)': \(reason)"
        }
    }
}

/// Where a reconstruction run stands: the phase and how many of its units are done.
public struct ReconstructionPosition: Codable, Equatable, Sendable {
    /// "weights" or "activations".
    public var phase: String
    /// Units finished in that phase.
    public var completedUnits: Int

    /// A position from its parts.
    public init(phase: String, completedUnits: Int) {
        self.phase = phase
        self.completedUnits = completedUnits
    }
}

/// A folder holding the state of an interrupted reconstruction: the network so far (`network.rapq`) and
/// `state.json` (position, a fingerprint of the run's inputs, the network file's CRC-32, and a CRC-32 of
/// all of these, `stateCRC32`). Both files are written atomically, the network first, so an interruption at
/// any moment leaves the previous checkpoint or the new one, never a mixture.
///
/// Nothing in a checkpoint is trusted: `load(units:)` checks the state's checksum, the fingerprint, the
/// phase, that the position lies within the run's units, and the network file's checksum before resuming.
public struct CheckpointStore: Sendable {
    /// The folder.
    public let folder: URL
    /// A fingerprint of the model, calibration data and options; a checkpoint with another is refused.
    public let fingerprint: String

    /// The `state.json` format this build writes and reads.
    public static let format = 2
    /// The phases a position can name, in run order.
    public static let phases = ["weights", "activations"]

    private struct State: Codable {
        var format = CheckpointStore.format
        var fingerprint: String
        var position: ReconstructionPosition
        var networkCRC32: UInt32
        var stateCRC32: UInt32 = 0

        var computedCRC32: UInt32 {
            CheckpointStore.stateChecksum(format: format, fingerprint: fingerprint, position: position, networkCRC32: networkCRC32)
        }
    }

    /// The `stateCRC32` of a `state.json` with these fields: the CRC-32 of
    /// `format|fingerprint|phase|completedUnits|networkCRC32`.
    public static func stateChecksum(format: Int, fingerprint: String, position: ReconstructionPosition, networkCRC32: UInt32) -> UInt32 {
        CRC32.checksum(Data("\(format)|\(fingerprint)|\(position.phase)|\(position.completedUnits)|\(networkCRC32)".utf8))
    }

    /// A store in `folder` for a run with the given fingerprint. With `create`, the folder is created if
    /// needed; without (resuming), a missing folder is `CheckpointError.missing` and nothing is created.
    public init(folder: URL, fingerprint: String, create: Bool = true) throws {
        self.folder = folder
        self.fingerprint = fingerprint
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory)
        if exists && !isDirectory.boolValue {
            throw CheckpointError.unwritable(folder: folder.path, reason: "it is a file, not a folder")
        }
        guard !exists else { return }
        guard create else { throw CheckpointError.missing(folder: folder.path) }
        do { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
            throw CheckpointError.unwritable(folder: folder.path, reason: error.localizedDescription)
        }
    }

    private var stateURL: URL { folder.appendingPathComponent("state.json") }
    private var networkURL: URL { folder.appendingPathComponent("network.rapq") }

    /// Saves `network` at `position`.
    public func save(_ network: QuantizedNetwork, at position: ReconstructionPosition) throws {
        do {
            let bytes = try RAPQFile.encode(network)
            try AtomicFile.write(bytes, to: networkURL)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            var state = State(fingerprint: fingerprint, position: position, networkCRC32: CRC32.checksum(bytes))
            state.stateCRC32 = state.computedCRC32
            try AtomicFile.write(try encoder.encode(state), to: stateURL)
        } catch let error as CheckpointError {
            throw error
        } catch {
            throw CheckpointError.unwritable(folder: folder.path, reason: "\(error)")
        }
    }

    /// The saved network and position of a run over `units` reconstruction units, or nil when the folder
    /// has no checkpoint. Throws `CheckpointError.corrupted` for a state whose checksum, phase or position
    /// does not hold, and `.foreign` for another run's checkpoint.
    public func load(units: Int) throws -> (network: QuantizedNetwork, position: ReconstructionPosition)? {
        guard FileManager.default.fileExists(atPath: stateURL.path) else { return nil }
        let state: State
        do { state = try JSONDecoder().decode(State.self, from: RegularFile.contents(of: stateURL)) } catch {
            throw CheckpointError.corrupted(folder: folder.path, reason: "state.json is not readable: \(error)")
        }
        guard state.format == Self.format else {
            throw CheckpointError.corrupted(folder: folder.path, reason: "state.json has format \(state.format), this version reads \(Self.format)")
        }
        guard state.stateCRC32 == state.computedCRC32 else {
            throw CheckpointError.corrupted(folder: folder.path, reason: "state.json does not match its checksum (edited or damaged)")
        }
        guard state.fingerprint == fingerprint else { throw CheckpointError.foreign(folder: folder.path) }
        guard Self.phases.contains(state.position.phase) else {
            throw CheckpointError.corrupted(folder: folder.path, reason: "unknown phase '\(state.position.phase)' (expected \(Self.phases.joined(separator: " or ")))")
        }
        guard (0...units).contains(state.position.completedUnits) else {
            throw CheckpointError.corrupted(folder: folder.path, reason: "it records \(state.position.completedUnits) completed units, but this run has \(units)")
        }
        guard let bytes = try? RegularFile.contents(of: networkURL), CRC32.checksum(bytes) == state.networkCRC32 else {
            throw CheckpointError.corrupted(folder: folder.path, reason: "network.rapq is missing or does not match state.json")
        }
        do { return (try RAPQFile.decode(bytes), state.position) } catch {
            throw CheckpointError.corrupted(folder: folder.path, reason: "\(error)")
        }
    }

    /// A hex FNV-1a 64 fingerprint of `parts` (strings and float arrays), for `init(folder:fingerprint:)`.
    public static func fingerprint(strings: [String], arrays: [[Float]]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ byte: UInt8) { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        for s in strings { for b in s.utf8 { mix(b) }; mix(0) }
        for a in arrays {
            a.withUnsafeBytes { raw in for b in raw { mix(b) } }
            mix(1)
        }
        return String(h, radix: 16)
    }
}
