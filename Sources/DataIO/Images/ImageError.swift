import Foundation

/// Why images could not be read, labelled or preprocessed.
public enum ImageError: Error, CustomStringConvertible, Equatable {
    /// The file is neither a JPEG nor a PNG (by its first bytes).
    case notAnImage(path: String)
    /// The file is a JPEG or PNG whose data are damaged or cut short.
    case damaged(path: String, reason: String)
    /// A valid image of a kind that is refused rather than converted.
    case unsupported(path: String, kind: String)
    /// The image is too large to decode.
    case tooLarge(path: String, reason: String)
    /// A folder holds no `.jpg`, `.jpeg` or `.png` file.
    case emptyFolder(path: String)
    /// Images of different sizes without a resize and crop to one size.
    case mixedSizes(path: String, size: String, first: String, firstSize: String)
    /// The image is smaller than the centre crop.
    case smallerThanCrop(path: String, size: String, crop: Int)
    /// A label file entry that does not parse.
    case malformedLabels(path: String, line: Int, reason: String)
    /// A label file names an image that is not in the data.
    case labelForMissingImage(labels: String, name: String)
    /// An image has no entry in the label file.
    case missingLabel(labels: String, name: String)
    /// `--preset` names no preset.
    case unknownPreset(name: String)
    /// A preprocessing value that cannot be used.
    case invalidPreprocessing(reason: String)
    /// Every image was skipped as unreadable.
    case noReadableImages(path: String, skipped: Int)

    public var description: String {
        switch self {
        case .notAnImage(let path):
            return "'\(path)' is not a JPEG or PNG image (its first bytes say otherwise); remove it, convert it, or pass --skip-bad-images"
        case .damaged(let path, let reason):
            return "'\(path)' is a damaged image: \(reason); replace it or pass --skip-bad-images"
        case .unsupported(let path, let kind):
            return "'\(path)' is \(kind), which is not converted; convert it to an 8-bit RGB PNG or JPEG (e.g. with PIL: Image.open(f).convert('RGB').save('f.png')) or pass --skip-bad-images"
        case .tooLarge(let path, let reason):
            return "'\(path)' is too large: \(reason); downscale it first or pass --skip-bad-images"
        case .emptyFolder(let path):
            return "'\(path)' holds no .jpg, .jpeg or .png file (searched recursively); point to the folder of images or to a .npy file"
        case .mixedSizes(let path, let size, let first, let firstSize):
            return "'\(path)' is \(size) but '\(first)' is \(firstSize); images of different sizes need --preset or --resize and --crop to bring them to one size"
        case .smallerThanCrop(let path, let size, let crop):
            return "'\(path)' is \(size) after resizing, smaller than the \(crop) x \(crop) crop; use --resize of at least \(crop)"
        case .malformedLabels(let path, let line, let reason):
            return "'\(path)' line \(line): \(reason); each line must be 'FILE,INDEX' or 'FILE INDEX' (a header line and '#' comments are allowed)"
        case .labelForMissingImage(let labels, let name):
            return "'\(labels)' gives a label to '\(name)', which is not among the images; fix the name (relative to the data folder, or a bare file name) or remove the line"
        case .missingLabel(let labels, let name):
            return "'\(labels)' has no label for the image '\(name)'; add a line for it"
        case .unknownPreset(let name):
            return "unknown preprocessing preset '\(name)'; choose one of \(Preprocessing.presetNames.joined(separator: ", "))"
        case .invalidPreprocessing(let reason):
            return "invalid preprocessing: \(reason)"
        case .noReadableImages(let path, let skipped):
            return "every image in '\(path)' was unreadable (\(skipped) skipped); check the files"
        }
    }
}
