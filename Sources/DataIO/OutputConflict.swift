import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Refuses outputs that would overwrite an input: two paths name the same file when `stat` (which follows
/// symbolic links) gives the same device and inode, so symlinks, hard links and `./a` versus `a` are caught.
/// An output that does not exist yet cannot be an input.
public enum OutputConflict {
    /// One file the command reads, with the name the user knows it by (a flag or argument).
    public struct Input: Sendable {
        /// How the user named it, e.g. `--calib`.
        public var role: String
        /// Its path.
        public var path: String

        /// An input from its role and path.
        public init(_ role: String, _ path: String) {
            self.role = role
            self.path = path
        }
    }

    /// Throws before any work when `output` cannot be written as a file: `DataError.outputIsInput` when it is
    /// the same file as one of `inputs`, `DataError.notARegularFile` when it exists as something other than a
    /// regular file (a FIFO, a device such as /dev/null, a folder: writers replace the destination by a renamed
    /// temporary, which would replace a device node by a plain file), `DataError.unwritable` when its folder
    /// does not exist.
    public static func check(output: String, role: String, against inputs: [Input]) throws {
        if output.hasSuffix("/") {
            throw DataError.unwritable(path: output, reason: "\(role) names a folder; give a file name")
        }
        // The temporary `.<name>.partial-<pid>-<n>` must fit the file system's 255-byte name limit too.
        let name = URL(fileURLWithPath: output).lastPathComponent
        if name.utf8.count > Self.longestName {
            throw DataError.unwritable(path: output, reason: "its name is \(name.utf8.count) bytes; rapq writes through a temporary with a longer name, so at most \(Self.longestName) bytes fit the 255-byte limit of file names; use a shorter name")
        }
        var info = stat()
        if stat(output, &info) == 0, info.st_mode & S_IFMT != S_IFREG {
            throw DataError.notARegularFile(path: output, kind: RegularFile.kind(of: info.st_mode) ?? "not a regular file")
        }
        let folder = URL(fileURLWithPath: output).deletingLastPathComponent().path
        var folderInfo = stat()
        guard stat(folder, &folderInfo) == 0, folderInfo.st_mode & S_IFMT == S_IFDIR else {
            throw DataError.unwritable(path: output, reason: "its folder '\(folder)' does not exist")
        }
        guard let target = identity(output) else { return }
        for input in inputs where identity(input.path) == target {
            throw DataError.outputIsInput(output: output, outputRole: role, input: input.path, inputRole: input.role)
        }
    }

    /// The longest output file name (bytes): 255 less the temporary's `.` and `.partial-<pid>-<n>`.
    public static let longestName = 255 - 1 - ".partial-".utf8.count - 2 * 20 - 1

    /// Throws `DataError.outputFolderHoldsInput` when one of `inputs` lies directly in `folder`, which a command
    /// fills with files whose names come from the model (so any input there could be overwritten).
    /// A `folder` that exists as anything but a folder is `DataError.unwritable`.
    public static func check(folder: String, role: String, against inputs: [Input]) throws {
        var info = stat()
        if stat(folder, &info) == 0, info.st_mode & S_IFMT != S_IFDIR {
            let kind = RegularFile.kind(of: info.st_mode) ?? "a file"
            throw DataError.unwritable(path: folder, reason: "\(role) must name a folder, but this is \(kind); give a folder (it is created if missing)")
        }
        guard let target = identity(folder) else { return }
        for input in inputs {
            let parent = URL(fileURLWithPath: input.path).resolvingSymlinksInPath().deletingLastPathComponent().path
            if identity(parent) == target || identity(input.path) == target {
                throw DataError.outputFolderHoldsInput(folder: folder, folderRole: role, input: input.path, inputRole: input.role)
            }
        }
    }

    /// The device and inode of the file `path` resolves to, or nil when it does not exist.
    static func identity(_ path: String) -> [UInt64]? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return [UInt64(info.st_dev), UInt64(info.st_ino)]
    }
}
