import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Opens input files only when they are regular files, so a FIFO, device, socket or folder given as a model,
/// data file or checkpoint is refused with a message instead of blocking forever or reading garbage.
///
/// Files are opened with `O_NONBLOCK` (opening a FIFO without a writer would otherwise wait forever) and
/// checked with `fstat` on the opened descriptor, so a file swapped between the check and the open is seen.
public enum RegularFile {
    /// The bytes of the regular file at `url` (memory-mapped; an empty file gives empty data).
    ///
    /// Throws `DataError.unreadable` when the file is missing or unreadable, and `DataError.notARegularFile`
    /// when `url` names a folder, FIFO, device or socket.
    public static func contents(of url: URL) throws -> Data {
        let (fd, size) = try openRegular(url)
        defer { close(fd) }
        guard size > 0 else { return Data() }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), address != MAP_FAILED else {
            throw DataError.unreadable(path: url.path, reason: String(cString: strerror(errno)))
        }
        return Data(bytesNoCopy: address, count: size, deallocator: .custom { pointer, count in munmap(pointer, count) })
    }

    /// `length` bytes of the regular file at `url` from byte `offset`; throws when the file is shorter.
    public static func contents(of url: URL, offset: Int, length: Int) throws -> Data {
        let (fd, size) = try openRegular(url)
        defer { close(fd) }
        guard offset >= 0, length >= 0, offset <= size, length <= size - offset else {
            throw DataError.unreadable(path: url.path, reason: "it has \(size) bytes, fewer than offset \(offset) + length \(length); it is truncated")
        }
        var data = Data(count: length)
        let failure = data.withUnsafeMutableBytes { raw -> String? in
            var done = 0
            while done < length {
                let n = pread(fd, raw.baseAddress! + done, length - done, off_t(offset + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    return String(cString: strerror(errno))
                }
                if n == 0 { return "it ended after \(offset + done) bytes while being read" }
                done += n
            }
            return nil
        }
        if let failure { throw DataError.unreadable(path: url.path, reason: failure) }
        return data
    }

    /// The size in bytes of the regular file at `url`, with the same checks as `contents(of:)`.
    public static func size(of url: URL) throws -> Int {
        let (fd, size) = try openRegular(url)
        close(fd)
        return size
    }

    /// A read-only descriptor of the regular file at `url` and its size; the caller closes it.
    private static func openRegular(_ url: URL) throws -> (Int32, Int) {
        let path = url.path
        var before = stat()
        guard stat(path, &before) == 0 else {
            let reason = errno == ENOENT ? "no such file" : String(cString: strerror(errno))
            throw DataError.unreadable(path: path, reason: reason)
        }
        // Refuse by name before opening: opening a device can have side effects.
        if let kind = kind(of: before.st_mode) { throw DataError.notARegularFile(path: path, kind: kind) }
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw DataError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        var after = stat()
        guard fstat(fd, &after) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw DataError.unreadable(path: path, reason: reason)
        }
        if let kind = kind(of: after.st_mode) {
            close(fd)
            throw DataError.notARegularFile(path: path, kind: kind)
        }
        return (fd, Int(after.st_size))
    }

    /// What a non-regular file is, in words; nil for a regular file.
    static func kind(of mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: return "a folder"
        case S_IFIFO: return "a FIFO (named pipe)"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "not a regular file"
        }
    }
}
