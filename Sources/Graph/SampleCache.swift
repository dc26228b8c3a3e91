import Foundation
import TensorKernels

/// Where the whole-batch tensors of a `GraphStream` (and so the reconstruction caches: each unit's inputs
/// and FP32 targets for every calibration sample) live: in memory while they fit in a budget of bytes, and
/// beyond it in files of a private folder, read back slice by slice or mini-batch by mini-batch.
///
/// Placement only decides where the bytes are: a tensor read back from a file is bit-identical to the one
/// written, so results never depend on the budget. The budget counts the tensors the cache holds at a time
/// (reserved when a tensor starts being written, released when the last reference to it goes), greedily:
/// a tensor that fits in what is left stays in memory, the next one that does not is spilled whole.
///
/// The spill folder (`rapq-cache-<pid>-<random>` inside the given directory) is created at once, so an
/// unwritable directory fails before any work. Each spill file is unlinked as soon as it is opened, so its
/// space returns to the system when its tensor is released or the process ends in any way; the (empty)
/// folder is removed when the cache is released.
public final class SampleCache: @unchecked Sendable {
    /// Bytes that may be held in memory (nil: no limit, nothing is ever spilled).
    public let limit: Int?
    /// The spill folder this cache created (nil when there is no limit).
    public let folder: URL?

    private let lock = NSLock()
    private var inMemory = 0, peak = 0, spilled = 0, files = 0

    /// A cache without a budget: every tensor stays in memory.
    public init() {
        limit = nil
        folder = nil
    }

    /// A cache holding at most `limit` bytes in memory, spilling the rest to a new folder inside `directory`.
    public init(limit: Int, directory: URL) throws {
        self.limit = Swift.max(0, limit)
        let folder = directory.appendingPathComponent("rapq-cache-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory)
        guard exists, isDirectory.boolValue else {
            throw SampleCacheError.unwritable(folder: directory.path, reason: exists ? "it is a file, not a folder" : "no such folder")
        }
        Self.removeStaleFolders(in: directory)
        guard mkdir(folder.path, 0o700) == 0 else {
            throw SampleCacheError.unwritable(folder: directory.path, reason: String(cString: strerror(errno)))
        }
        self.folder = folder
    }

    deinit {
        if let folder { try? FileManager.default.removeItem(at: folder) }
    }

    /// Removes the `rapq-cache-<pid>-<n>` folders in `directory` whose process no longer exists (a process
    /// killed by SIGKILL cannot remove its own). A folder whose pid is alive, even if reused by another
    /// program, is left alone.
    public static func removeStaleFolders(in directory: URL) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return }
        for name in names where name.hasPrefix("rapq-cache-") {
            let parts = name.dropFirst("rapq-cache-".count).split(separator: "-")
            guard parts.count == 2, let pid = Int32(parts[0]), pid > 0, pid != getpid(), UInt32(parts[1]) != nil else { continue }
            guard kill(pid, 0) != 0, errno == ESRCH else { continue }
            let url = directory.appendingPathComponent(name)
            var info = stat()
            // Only folders this user owns: never follow a link or touch another user's files.
            guard lstat(url.path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, info.st_uid == geteuid() else { continue }
            try? FileManager.default.removeItem(at: url)
        }
    }

    /// What the cache has done so far.
    public var statistics: SampleCacheStatistics {
        lock.lock(); defer { lock.unlock() }
        return SampleCacheStatistics(peakBytesInMemory: peak, bytesInMemory: inMemory, bytesSpilled: spilled, filesWritten: files)
    }

    /// A writer for a tensor of `samples` samples shaped `sampleShape` each; it is placed in memory if its
    /// bytes fit in what is left of the budget, in a spill file otherwise.
    public func writer(sampleShape: [Int], samples: Int) throws -> CachedTensorWriter {
        let bytes = samples * sampleShape.shapeProduct * MemoryLayout<Float>.stride
        if reserve(bytes) { return CachedTensorWriter(cache: self, sampleShape: sampleShape, samples: samples, accounted: bytes) }
        let url = nextFileURL()
        let descriptor = open(url.path, O_RDWR | O_CREAT | O_EXCL, 0o600)
        guard descriptor >= 0 else { throw failure(errno) }
        // Unlinked at once: the open descriptor keeps the bytes, and the system frees them when the descriptor
        // is closed, however the process ends (an error, Ctrl-C or a kill leave no spill file behind).
        unlink(url.path)
        return CachedTensorWriter(cache: self, sampleShape: sampleShape, samples: samples, file: (descriptor, url))
    }

    /// `tensor` kept by this cache (copied to a spill file when it does not fit in the budget).
    public func store(_ tensor: Tensor) throws -> CachedTensor {
        let bytes = tensor.count * MemoryLayout<Float>.stride
        if reserve(bytes) { return CachedTensor(shape: tensor.shape, storage: .memory(tensor), accounted: bytes, cache: self) }
        let writer = try writer(sampleShape: Array(tensor.shape.dropFirst()), samples: tensor.shape.first ?? 0)
        try writer.append(tensor)
        return try writer.finish()
    }

    /// Counts `bytes` as held in memory if they fit in the budget.
    func reserve(_ bytes: Int) -> Bool {
        lock.lock(); defer { lock.unlock() }
        if let limit, inMemory + bytes > limit { return false }
        inMemory += bytes
        peak = Swift.max(peak, inMemory)
        return true
    }

    /// Returns `bytes` reserved by `reserve`.
    func release(_ bytes: Int) {
        lock.lock(); defer { lock.unlock() }
        inMemory -= bytes
    }

    /// Counts `bytes` written to spill files.
    func recordSpill(_ bytes: Int) {
        lock.lock(); defer { lock.unlock() }
        spilled += bytes
    }

    private func nextFileURL() -> URL {
        lock.lock(); defer { lock.unlock() }
        files += 1
        // `folder` exists whenever a reservation can fail (a limit is set).
        return folder!.appendingPathComponent("t\(files).f32")
    }

    /// The error for a failed write with `code` (errno).
    func failure(_ code: Int32) -> SampleCacheError {
        let path = folder?.deletingLastPathComponent().path ?? "?"
        switch code {
        case ENOSPC, EDQUOT, EFBIG: return .noSpace(folder: path)
        default: return .unwritable(folder: path, reason: String(cString: strerror(code)))
        }
    }
}

/// Counters of a `SampleCache`.
public struct SampleCacheStatistics: Equatable, Sendable {
    /// The most bytes held in memory at once, and now.
    public var peakBytesInMemory: Int, bytesInMemory: Int
    /// Bytes written to spill files, and how many files.
    public var bytesSpilled: Int, filesWritten: Int
}
