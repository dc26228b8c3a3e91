extension Parallel {
    /// The ranges `forEachChunk` would use: `0..<count` cut into at most `maxChunks` contiguous pieces of
    /// near-equal length. Reductions that keep one partial per chunk use these boundaries, which depend
    /// only on `count` and `maxChunks`, so their result has the same bits for any thread count.
    static func chunks(_ count: Int, maxChunks: Int) -> [Range<Int>] {
        if count <= 0 { return [] }
        let n = Swift.max(1, Swift.min(maxChunks, count))
        return (0..<n).map { c in (count * c / n)..<(count * (c + 1) / n) }
    }

    /// Runs `body(chunkIndex, range)` for each of `ranges`, concurrently unless `concurrent` is false
    /// (the serial order exists so that tests can show the result does not depend on scheduling).
    static func forEach(_ ranges: [Range<Int>], concurrent: Bool = true, _ body: (Int, Range<Int>) -> Void) {
        if concurrent {
            forEach(ranges.count) { body($0, ranges[$0]) }
        } else {
            for (i, r) in ranges.enumerated() { body(i, r) }
        }
    }
}
