/// Why a `SampleCache` could not keep or give back a tensor.
public enum SampleCacheError: Error, CustomStringConvertible, Equatable {
    /// The spill folder could not be created or a spill file could not be written.
    case unwritable(folder: String, reason: String)
    /// The device holding the spill folder is full (or the file size or disk quota limit was reached).
    case noSpace(folder: String)
    /// A spill file could not be read back.
    case unreadable(path: String, reason: String)

    public var description: String {
        switch self {
        case .unwritable(let folder, let reason):
            return "cannot write the reconstruction cache to '\(folder)': \(reason); give a writable --cache-dir"
        case .noSpace(let folder):
            return "no space left on device while writing cache to \(folder): use a larger --cache-dir or a larger --max-memory"
        case .unreadable(let path, let reason):
            return "cannot read the reconstruction cache file '\(path)' back: \(reason); was the --cache-dir folder changed during the run?"
        }
    }
}
