import Foundation

/// The images under a folder (or one image file), in sorted path order, with ImageNet-style class labels
/// when the folder is laid out as torchvision's `ImageFolder` expects.
///
/// Files are found recursively and taken when their extension (any case) is one torchvision's ImageFolder
/// takes (.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp); only JPEG and PNG decode, so the others are
/// reported as unreadable rather than silently left out. Other files are ignored and listed in `ignored`.
/// Paths are sorted component by component, each by Unicode code points (Python's string order), so a
/// class folder's images stay together and rows line up with `files`.
///
/// Class layout: when the folder holds subfolders and no image directly, the classes are its subfolders'
/// names in sorted order and an image's label is the index of the subfolder it is under, as
/// `torchvision.datasets.ImageFolder` (every subfolder counts, empty ones included).
public struct ImageFolder: Sendable {
    /// The folder, or the image file given directly.
    public var root: URL
    /// Image paths relative to `root` (a file given directly: its name), sorted.
    public var files: [String]
    /// Class names (sorted subfolders) when the folder has the class layout.
    public var classes: [String]?
    /// Whether `root` is a folder (otherwise the one image file).
    public var isFolder: Bool
    /// Files left out because their extension is not an image's, relative to `root`.
    public var ignored: [String]

    /// Extensions taken as images (lower case).
    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp"]

    /// Lists the images at `url`: a folder (recursively) or one image file.
    public init(contentsOf url: URL) throws {
        var directory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &directory) else {
            throw DataError.unreadable(path: url.path, reason: "no such file or folder")
        }
        root = url
        isFolder = directory.boolValue
        guard isFolder else {
            files = [url.lastPathComponent]
            classes = nil
            ignored = []
            return
        }
        guard let listing = FileManager.default.subpaths(atPath: url.path) else {
            throw DataError.unreadable(path: url.path, reason: "the folder cannot be listed")
        }
        var images: [String] = [], others: [String] = []
        for relative in listing {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.appendingPathComponent(relative).path, isDirectory: &isDirectory),
                  !isDirectory.boolValue else { continue }
            if Self.imageExtensions.contains((relative as NSString).pathExtension.lowercased()) { images.append(relative) } else { others.append(relative) }
        }
        guard !images.isEmpty else { throw ImageError.emptyFolder(path: url.path) }
        files = images.sorted(by: Self.pathOrder)
        ignored = others.sorted(by: Self.pathOrder)
        if images.allSatisfy({ $0.contains("/") }) {
            let entries = (try? FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: [.isDirectoryKey])) ?? []
            classes = entries.filter { (try? $0.resourceValues(forKeys: [.isDirectoryKey]).isDirectory) == true }
                .map(\.lastPathComponent).sorted(by: Self.codePointOrder)
        } else {
            classes = nil
        }
    }

    /// The URL of `files[i]`.
    public func url(of file: String) -> URL {
        isFolder ? root.appendingPathComponent(file) : root
    }

    /// The class index of a file under the class layout (the index of its first path component).
    public func classIndex(of file: String) -> Int? {
        guard let classes, let folder = file.split(separator: "/").first else { return nil }
        return classes.firstIndex(of: String(folder))
    }

    /// Python's `str` ordering: Unicode code points, lexicographically.
    public static func codePointOrder(_ a: String, _ b: String) -> Bool {
        a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars) { $0.value < $1.value }
    }

    /// Paths compared component by component, each in code point order.
    public static func pathOrder(_ a: String, _ b: String) -> Bool {
        a.split(separator: "/").map(String.init).lexicographicallyPrecedes(b.split(separator: "/").map(String.init), by: codePointOrder)
    }
}
