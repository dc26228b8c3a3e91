import Foundation
import TensorKernels

/// The samples of one batch-first tensor kept by a `SampleCache`: in memory, or in a spill file of raw
/// Float32 rows (native byte order, sample after sample). Reads give the same bits from either place.
///
/// A reference type so that the bytes are counted against the budget once however many names refer to
/// them; the budget is released, and the spill file's space freed, when the last reference goes.
public final class CachedTensor: @unchecked Sendable {
    enum Storage {
        case memory(Tensor)
        case file(descriptor: Int32, url: URL)
    }

    /// The full shape, batch first.
    public let shape: [Int]
    let storage: Storage
    private let accounted: Int
    private let cache: SampleCache?
    private let perSample: Int

    init(shape: [Int], storage: Storage, accounted: Int, cache: SampleCache?) {
        self.shape = shape
        self.storage = storage
        self.accounted = accounted
        self.cache = cache
        perSample = Array(shape.dropFirst()).shapeProduct
    }

    /// A tensor that is held elsewhere anyway (the calibration samples): wrapped without copying and not
    /// counted against any budget.
    public convenience init(external tensor: Tensor) {
        self.init(shape: tensor.shape, storage: .memory(tensor), accounted: 0, cache: nil)
    }

    deinit {
        cache?.release(accounted)
        if case .file(let descriptor, _) = storage { close(descriptor) }
    }

    /// Number of samples.
    public var samples: Int { shape.first ?? 0 }

    /// True when the samples are in a spill file.
    public var isSpilled: Bool {
        if case .file = storage { return true }
        return false
    }

    /// The samples `range`, in order.
    public func rows(_ range: Range<Int>) throws -> Tensor {
        switch storage {
        case .memory(let tensor):
            return tensor.rows(range)
        case .file(let descriptor, let url):
            precondition(range.lowerBound >= 0 && range.upperBound <= samples, "rows \(range) out of range")
            var out = Tensor(shape: [range.count] + shape.dropFirst(), repeating: 0)
            try out.withUnsafeMutableBufferPointer { buffer in
                try Self.read(descriptor, url, into: UnsafeMutableRawBufferPointer(buffer), at: range.lowerBound * perSample * 4)
            }
            return out
        }
    }

    /// The samples at `indices`, in that order (a mini-batch).
    public func rows(_ indices: [Int]) throws -> Tensor {
        switch storage {
        case .memory(let tensor):
            return tensor.rows(indices)
        case .file(let descriptor, let url):
            var out = Tensor(shape: [indices.count] + shape.dropFirst(), repeating: 0)
            let per = perSample
            try out.withUnsafeMutableBufferPointer { buffer in
                for (r, i) in indices.enumerated() {
                    precondition(i >= 0 && i < samples, "row \(i) out of range")
                    let row = UnsafeMutableBufferPointer(rebasing: buffer[r * per..<(r + 1) * per])
                    try Self.read(descriptor, url, into: UnsafeMutableRawBufferPointer(row), at: i * per * 4)
                }
            }
            return out
        }
    }

    /// Every sample (read back whole when spilled).
    public func tensor() throws -> Tensor {
        if case .memory(let tensor) = storage { return tensor }
        return try rows(0..<samples)
    }

    /// Fills `buffer` from the file at byte `offset`.
    private static func read(_ descriptor: Int32, _ url: URL, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws {
        var done = 0
        while done < buffer.count {
            let n = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw SampleCacheError.unreadable(path: url.path, reason: n == 0 ? "the file is shorter than written" : String(cString: strerror(errno)))
            }
            done += n
        }
    }
}

/// Builds a `CachedTensor` from consecutive slices of samples, straight into memory or its spill file, so
/// the whole tensor never exists twice. An abandoned writer (an error midway) releases its budget and
/// its file.
public final class CachedTensorWriter {
    private let cache: SampleCache
    private let sampleShape: [Int]
    private let samples: Int
    private let accounted: Int
    private var buffer: [Float] = []
    private var file: (descriptor: Int32, url: URL)?
    private var written = 0
    private var finished = false

    init(cache: SampleCache, sampleShape: [Int], samples: Int, accounted: Int) {
        self.cache = cache
        self.sampleShape = sampleShape
        self.samples = samples
        self.accounted = accounted
        buffer.reserveCapacity(samples * sampleShape.shapeProduct)
    }

    init(cache: SampleCache, sampleShape: [Int], samples: Int, file: (descriptor: Int32, url: URL)) {
        self.cache = cache
        self.sampleShape = sampleShape
        self.samples = samples
        self.accounted = 0
        self.file = file
    }

    deinit {
        guard !finished else { return }
        cache.release(accounted)
        if let file { close(file.descriptor) }
    }

    /// Appends the next samples (a tensor shaped `[k] + sampleShape`).
    public func append(_ slice: Tensor) throws {
        precondition(!finished && Array(slice.shape.dropFirst()) == sampleShape && written + slice.shape[0] <= samples,
                     "slice \(slice.shape) does not continue a cached tensor of \(samples) x \(sampleShape)")
        guard let file else {
            buffer.append(contentsOf: slice.data)
            written += slice.shape[0]
            return
        }
        let offset = written * sampleShape.shapeProduct * 4
        try slice.withUnsafeBufferPointer { floats in
            let bytes = UnsafeRawBufferPointer(floats)
            var done = 0
            while done < bytes.count {
                let n = pwrite(file.descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw cache.failure(n == 0 ? ENOSPC : errno) }
                done += n
            }
        }
        cache.recordSpill(slice.count * 4)
        written += slice.shape[0]
    }

    /// The finished tensor; every sample must have been appended.
    public func finish() throws -> CachedTensor {
        precondition(!finished && written == samples, "\(written) of \(samples) samples written")
        finished = true
        let shape = [samples] + sampleShape
        if let file {
            return CachedTensor(shape: shape, storage: .file(descriptor: file.descriptor, url: file.url), accounted: 0, cache: cache)
        }
        return CachedTensor(shape: shape, storage: .memory(Tensor(shape: shape, data: buffer)), accounted: accounted, cache: cache)
    }
}
