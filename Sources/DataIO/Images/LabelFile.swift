import Foundation

/// A text or CSV file giving each image its class index: one `FILE,INDEX` or `FILE INDEX` per line (the
/// last comma, tab or space separates them, so names may contain spaces when a comma is used). Blank lines
/// and lines starting with '#' are skipped, and so is a first line whose index is not a number (a CSV
/// header such as `file,label`). FILE is a path relative to the data folder or a bare file name.
public struct LabelFile: Sendable {
    /// The file read.
    public var path: String
    /// (name, index) in file order.
    public var entries: [(name: String, index: Int64)]
    /// The line of each entry in the file (1-based), for messages.
    var lines: [Int] = []

    /// Reads and parses the label file at `url`.
    public init(contentsOf url: URL) throws {
        path = url.path
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw DataError.unreadable(path: url.path, reason: FileManager.default.fileExists(atPath: url.path) ? "not UTF-8 text" : "no such file")
        }
        entries = []
        var seenData = false
        for (number, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let separator = line.lastIndex(of: ",") ?? line.lastIndex(where: { $0 == "\t" || $0 == " " })
            guard let separator else {
                if !seenData { seenData = true; continue }
                throw ImageError.malformedLabels(path: path, line: number + 1, reason: "no separator between file and index")
            }
            let name = line[..<separator].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: separator)...].trimmingCharacters(in: .whitespaces)
            guard let index = Int64(value), index >= 0, !name.isEmpty else {
                if !seenData { seenData = true; continue }
                throw ImageError.malformedLabels(path: path, line: number + 1, reason: "'\(value)' is not a non-negative class index")
            }
            seenData = true
            entries.append((name, index))
            lines.append(number + 1)
        }
        guard !entries.isEmpty else { throw ImageError.malformedLabels(path: path, line: 1, reason: "no entries") }
    }

    /// The label of each of `files` (paths relative to the data folder), matched by relative path or, when
    /// the file uses bare names, by file name. Every entry must name one of the images (`allFiles`, the
    /// folder's images before any were skipped) and every one of `files` needs an entry.
    public func labels(for files: [String], allFiles: [String]) throws -> [Int64] {
        var byPath: [String: Int64] = [:], byName: [String: Int64] = [:]
        let known = Set(allFiles)
        let nameCounts = Dictionary(allFiles.map { (($0 as NSString).lastPathComponent, 1) }, uniquingKeysWith: +)
        for ((name, index), line) in zip(entries, lines) {
            let cleaned = name.hasPrefix("./") ? String(name.dropFirst(2)) : name
            if known.contains(cleaned) { byPath[cleaned] = index } else if !cleaned.contains("/"), let count = nameCounts[cleaned] {
                guard count == 1 else {
                    throw ImageError.malformedLabels(path: path, line: line, reason: "'\(cleaned)' names \(count) images in different folders; give its path relative to the data folder")
                }
                byName[cleaned] = index
            } else {
                throw ImageError.labelForMissingImage(labels: path, name: name)
            }
        }
        return try files.map { file in
            if let index = byPath[file] ?? byName[(file as NSString).lastPathComponent] { return index }
            throw ImageError.missingLabel(labels: path, name: file)
        }
    }
}
