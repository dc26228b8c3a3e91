import Foundation

/// Why a data file could not be read or written.
public enum DataError: Error, CustomStringConvertible, Equatable {
    /// The file could not be opened or read.
    case unreadable(path: String, reason: String)
    /// The file is not a valid `.npy` array.
    case malformedNumpy(path: String, reason: String)
    /// The array's element type is not one this tool reads.
    case unsupportedElementType(path: String, descr: String)
    /// The output could not be written.
    case unwritable(path: String, reason: String)
    /// The data contain NaN or infinite values.
    case nonFinite(path: String, index: Int)
    /// The path names a folder, FIFO, device or socket where a regular file is needed.
    case notARegularFile(path: String, kind: String)
    /// An output path names the same file as an input (directly, through a symlink or a hard link).
    case outputIsInput(output: String, outputRole: String, input: String, inputRole: String)
    /// An output folder, whose file names come from the model, holds an input.
    case outputFolderHoldsInput(folder: String, folderRole: String, input: String, inputRole: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason):
            return "cannot read '\(path)': \(reason)"
        case .malformedNumpy(let path, let reason):
            return "'\(path)' is not a valid NumPy .npy file: \(reason); save it with numpy.save"
        case .unsupportedElementType(let path, let descr):
            return "'\(path)' holds elements of type '\(descr)'; supported are float32, float64, uint8, int8, int32 and int64 (little-endian)"
        case .unwritable(let path, let reason):
            return "cannot write '\(path)': \(reason); check that the folder exists and is writable"
        case .nonFinite(let path, let index):
            return "'\(path)' contains a NaN or infinite value at flat index \(index); clean the data first"
        case .notARegularFile(let path, let kind):
            return "'\(path)' is \(kind), not a regular file; give the path of a file"
        case .outputIsInput(let output, let outputRole, let input, let inputRole):
            let same = output == input ? "" : " ('\(input)')"
            return "\(outputRole) '\(output)' is the same file as \(inputRole)\(same); writing it would destroy the input, so nothing was done; choose another output path"
        case .outputFolderHoldsInput(let folder, let folderRole, let input, let inputRole):
            return "\(folderRole) '\(folder)' holds \(inputRole) '\(input)', which writing there could overwrite, so nothing was done; choose another folder"
        }
    }
}
