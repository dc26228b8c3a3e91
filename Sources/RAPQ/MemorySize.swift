import Foundation

/// A number of bytes, read and written the way people write memory sizes: `2GB`, `512MB`, `1.5GiB`.
/// KB, MB, GB and TB are powers of 1000; KiB, MiB, GiB and TiB powers of 1024 (units are case-insensitive).
public struct MemorySize: Equatable, Sendable, CustomStringConvertible {
    /// The size in bytes.
    public var bytes: Int

    /// A size of `bytes` bytes.
    public init(bytes: Int) { self.bytes = bytes }

    private static let units: [String: Double] = [
        "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
        "kib": 1024, "mib": 1_048_576, "gib": 1_073_741_824, "tib": 1_099_511_627_776,
    ]

    /// Reads `text`: a positive number followed by a unit (`2GB`, `512 MB`, `1.5GiB`).
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let number = trimmed.prefix { $0.isNumber || $0 == "." }
        let unit = trimmed.dropFirst(number.count).trimmingCharacters(in: .whitespaces).lowercased()
        guard let value = Double(number), value.isFinite, let scale = Self.units[unit] else {
            throw MemorySizeError.invalid(text: text)
        }
        let bytes = (value * scale).rounded()
        guard bytes >= 1, bytes < Double(Int.max) else { throw MemorySizeError.outOfRange(text: text) }
        self.bytes = Int(bytes)
    }

    /// The size in decimal units with two decimals (`1.64 GB`, `512.00 MB`).
    public var description: String {
        let value = Double(bytes)
        for (unit, scale) in [("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)] where value >= scale {
            return String(format: "%.2f %@", value / scale, unit)
        }
        return "\(bytes) B"
    }
}

/// Why a memory size could not be read.
public enum MemorySizeError: Error, CustomStringConvertible, Equatable {
    /// The text is not a number followed by a known unit.
    case invalid(text: String)
    /// The size is below one byte or too large.
    case outOfRange(text: String)

    public var description: String {
        switch self {
        case .invalid(let text):
            return "'\(text)' is not a memory size; write a number and a unit, e.g. 2GB, 512MB or 1.5GiB (KB, MB, GB, TB are powers of 1000; KiB, MiB, GiB, TiB powers of 1024)"
        case .outOfRange(let text):
            return "memory size '\(text)' is out of range; give at least 1B"
        }
    }
}
