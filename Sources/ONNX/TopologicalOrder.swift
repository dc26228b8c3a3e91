/// Orders nodes so that each comes after the producers of its inputs (Kahn's algorithm).
///
/// Among the nodes that are ready, the one listed first in the file goes first, so a file that is already
/// in order keeps its order and the result is deterministic.
enum TopologicalOrder {
    /// The node indices in execution order, or the indices of the nodes on (or between) cycles.
    ///
    /// `dependencies[i]` lists the nodes whose outputs node `i` reads.
    static func sort(dependencies: [[Int]]) -> Result<[Int], CycleFound> {
        let n = dependencies.count
        var pending = [Int](repeating: 0, count: n)
        var readers = [[Int]](repeating: [], count: n)
        for (i, producers) in dependencies.enumerated() {
            for p in Set(producers) {
                pending[i] += 1
                readers[p].append(i)
            }
        }
        // A binary min-heap of ready node indices.
        var heap = MinHeap()
        for i in 0..<n where pending[i] == 0 { heap.push(i) }
        var order: [Int] = []
        order.reserveCapacity(n)
        while let i = heap.pop() {
            order.append(i)
            for r in readers[i] {
                pending[r] -= 1
                if pending[r] == 0 { heap.push(r) }
            }
        }
        if order.count == n { return .success(order) }

        // Nodes left over are on a cycle or downstream of one; peel off those that feed nothing left over
        // until only nodes on cycles (or linking two cycles) remain.
        var remaining = Set(0..<n).subtracting(order)
        var changed = true
        while changed {
            changed = false
            for i in remaining where !readers[i].contains(where: remaining.contains) {
                remaining.remove(i)
                changed = true
            }
        }
        return .failure(CycleFound(nodes: remaining.sorted()))
    }

    /// The indices of nodes that take part in a cycle.
    struct CycleFound: Error {
        let nodes: [Int]
    }

    private struct MinHeap {
        var items: [Int] = []

        mutating func push(_ value: Int) {
            items.append(value)
            var child = items.count - 1
            while child > 0 {
                let parent = (child - 1) / 2
                guard items[child] < items[parent] else { break }
                items.swapAt(child, parent)
                child = parent
            }
        }

        mutating func pop() -> Int? {
            guard !items.isEmpty else { return nil }
            items.swapAt(0, items.count - 1)
            let top = items.removeLast()
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var smallest = parent
                if left < items.count, items[left] < items[smallest] { smallest = left }
                if right < items.count, items[right] < items[smallest] { smallest = right }
                if smallest == parent { break }
                items.swapAt(parent, smallest)
                parent = smallest
            }
            return top
        }
    }
}
