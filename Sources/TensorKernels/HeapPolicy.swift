#if canImport(Glibc)
import CMalloc
#endif

/// How the process's allocator treats the large, short-lived buffers of tensors.
///
/// glibc serves every block above its mmap threshold (at most 32 MB by default) with a fresh `mmap` and
/// returns it with `munmap` when freed. A network run allocates and frees tensors of 50-150 MB per layer
/// at batch 32, so each layer then pays for zero-filling new pages and tearing them down again: on
/// EfficientNet-Lite0 that was close to half of the FP32 inference time. Raising the mmap and trim
/// thresholds keeps freed blocks in the heap for the next layer to reuse.
public enum HeapPolicy {
    /// Blocks up to this size come from the reusable heap; the heap is trimmed only beyond it.
    public static let reusableBlockLimit = 1 << 30

    /// Applies the policy once per process (later calls do nothing). Called by `Executor.init`; a
    /// no-op where the allocator is not glibc's.
    public static func reuseLargeBlocks() { _ = applied }

    private static let applied: Bool = {
        #if canImport(Glibc)
        let limit = Int32(reusableBlockLimit)
        return mallopt(M_MMAP_THRESHOLD, limit) == 1 && mallopt(M_TRIM_THRESHOLD, limit) == 1
        #else
        return false
        #endif
    }()
}
