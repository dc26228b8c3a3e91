/// How operands of NumPy-style broadcasting are laid out against the output: the output shape and
/// each operand's strides in it (0 along broadcast dimensions), with size-1 dimensions dropped and
/// adjacent dimensions merged wherever every operand is contiguous across them. `[N,C,H,W] · [1,C,1,1]`
/// becomes `[N, C, H·W]` with strides `[C·H·W, H·W, 1]` and `[0, 1, 0]`: the inner loop runs over `H·W`.
struct BroadcastLayout {
    /// The merged output dimensions, outermost first (at least one).
    let shape: [Int]
    /// For each operand, its stride along each merged dimension.
    let strides: [[Int]]

    init(output: [Int], operands: [[Int]]) {
        let rank = output.count
        var dims: [(size: Int, strides: [Int])] = []
        let operandStrides: [[Int]] = operands.map { shape in
            precondition(shape.count <= rank, "operand \(shape) has higher rank than \(output)")
            let padded = [Int](repeating: 1, count: rank - shape.count) + shape
            var strides = [Int](repeating: 0, count: rank)
            var step = 1
            for d in stride(from: rank - 1, through: 0, by: -1) {
                precondition(padded[d] == output[d] || padded[d] == 1, "operand \(shape) does not broadcast to \(output)")
                strides[d] = padded[d] == 1 ? 0 : step
                step *= padded[d]
            }
            return strides
        }
        for d in stride(from: rank - 1, through: 0, by: -1) where output[d] != 1 {
            let outer = operandStrides.map { $0[d] }
            if let inner = dims.last, zip(outer, inner.strides).allSatisfy({ $0 == $1 * inner.size }) {
                dims[dims.count - 1].size *= output[d]
            } else {
                dims.append((output[d], outer))
            }
        }
        if dims.isEmpty { dims = [(1, [Int](repeating: 0, count: operands.count))] }
        dims.reverse()
        shape = dims.map(\.size)
        strides = (0..<operands.count).map { k in dims.map { $0.strides[k] } }
    }

    /// Elements along the innermost merged dimension.
    var rowLength: Int { shape[shape.count - 1] }
    /// Number of innermost rows.
    var rowCount: Int { shape.dropLast().reduce(1, *) }

    /// The offset of operand `k` at the start of row `row`.
    func rowOffset(_ row: Int, operand k: Int) -> Int {
        var r = row, offset = 0
        for d in stride(from: shape.count - 2, through: 0, by: -1) {
            offset += (r % shape[d]) * strides[k][d]
            r /= shape[d]
        }
        return offset
    }
}
