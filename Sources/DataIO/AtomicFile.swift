import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes files so that a crash or error never leaves a half-written output: the bytes go to a new temporary
/// file in the destination's folder, are flushed to the disk (`fsync`), and the temporary is renamed over the
/// destination. The temporary is removed on every failure path (a full disk, a failed rename).
public enum AtomicFile {
    /// Writes `data` to `url` atomically; throws `DataError.unwritable` with the reason on failure.
    public static func write(_ data: Data, to url: URL) throws {
        let folder = url.deletingLastPathComponent()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataError.unwritable(path: url.path, reason: "folder '\(folder.path)' does not exist")
        }
        // The rename would replace a FIFO or a device node (/dev/null) by a plain file.
        var info = stat()
        if stat(url.path, &info) == 0, let kind = RegularFile.kind(of: info.st_mode) {
            throw DataError.notARegularFile(path: url.path, kind: kind)
        }
        removeStaleTemporaries(in: folder, for: url)
        let (fd, temporary) = try createTemporary(in: folder, for: url)
        var failure = writeAll(data, to: fd)
        if failure == nil, fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
        if close(fd) != 0, failure == nil { failure = String(cString: strerror(errno)) }
        if failure == nil, rename(temporary, url.path) != 0 { failure = String(cString: strerror(errno)) }
        if let failure {
            unlink(temporary)
            throw DataError.unwritable(path: url.path, reason: failure)
        }
        // Make the rename itself durable; a failure here leaves a complete file, so it is not reported.
        let folderDescriptor = open(folder.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if folderDescriptor >= 0 { _ = fsync(folderDescriptor); close(folderDescriptor) }
    }

    /// Removes the temporaries `.<name>.partial-<pid>-<n>` of `url` left by processes that no longer exist
    /// (killed by SIGKILL while writing): only regular files of this user; a live pid's are left alone.
    static func removeStaleTemporaries(in folder: URL, for url: URL) {
        let prefix = ".\(url.lastPathComponent).partial-"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return }
        for name in names where name.hasPrefix(prefix) {
            let parts = name.dropFirst(prefix.count).split(separator: "-")
            guard parts.count == 2, let pid = Int32(parts[0]), pid > 0, pid != getpid(), Int(parts[1]) != nil else { continue }
            guard kill(pid, 0) != 0, errno == ESRCH else { continue }
            let path = folder.appendingPathComponent(name).path
            var info = stat()
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_uid == geteuid() else { continue }
            unlink(path)
        }
    }

    /// Creates a fresh temporary file (never an existing one: `O_EXCL`) next to `url`.
    private static func createTemporary(in folder: URL, for url: URL) throws -> (Int32, String) {
        for attempt in 0..<100 {
            let path = folder.appendingPathComponent(".\(url.lastPathComponent).partial-\(getpid())-\(attempt)").path
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
            if fd >= 0 { return (fd, path) }
            if errno != EEXIST { throw DataError.unwritable(path: url.path, reason: String(cString: strerror(errno))) }
        }
        throw DataError.unwritable(path: url.path, reason: "cannot create a temporary file in '\(folder.path)'")
    }
}

/// Writes every byte of `data` to `fd`, retrying interrupted and partial writes; the reason on failure.
private func writeAll(_ data: Data, to fd: Int32) -> String? {
    data.withUnsafeBytes { raw -> String? in
        var done = 0
        while done < raw.count {
            let n = write(fd, raw.baseAddress! + done, raw.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                return String(cString: strerror(errno))
            }
            done += n
        }
        return nil
    }
}
