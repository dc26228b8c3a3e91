import Dispatch

/// The one place where kernels fan work out over the machine's cores.
///
/// Work is split into `chunks` pieces whose boundaries depend only on `count` and `chunks`, never on the
/// number of threads, so that any reduction a caller does per chunk gives the same bits on every machine.
public enum Parallel {
    /// Runs `body(i)` for every `i` in `0..<count`, concurrently when `count > 1`.
    ///
    /// `body` must only write to memory that no other index writes.
    @inlinable
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        if count <= 0 { return }
        if count == 1 || threadCount == 1 {
            for i in 0..<count { body(i) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: count, execute: body)
    }

    /// Splits `0..<count` into at most `maxChunks` contiguous ranges of near-equal length and runs
    /// `body(range)` for each, concurrently. Boundaries depend only on `count` and `maxChunks`.
    @inlinable
    public static func forEachChunk(_ count: Int, maxChunks: Int = 64, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let chunks = Swift.max(1, Swift.min(maxChunks, count))
        forEach(chunks) { c in
            let start = count * c / chunks
            let end = count * (c + 1) / chunks
            if start < end { body(start..<end) }
        }
    }

    /// The number of worker threads to use: `RAPQ_THREADS` if set, otherwise the active processor count.
    public static let threadCount: Int = {
        if let text = ProcessInfo_environment("RAPQ_THREADS"), let n = Int(text), n > 0 { return n }
        return Swift.max(1, activeProcessorCount())
    }()
}

#if canImport(Glibc)
import Glibc
@usableFromInline func activeProcessorCount() -> Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
#elseif canImport(Darwin)
import Darwin
@usableFromInline func activeProcessorCount() -> Int { Int(sysconf(_SC_NPROCESSORS_ONLN)) }
#endif

@usableFromInline func ProcessInfo_environment(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    return String(cString: value)
}
