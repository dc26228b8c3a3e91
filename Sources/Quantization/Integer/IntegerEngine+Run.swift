import Graph
import ONNX
import TensorKernels

extension IntegerEngine {
    /// Runs one batch: the logits and the codes of every activation site.
    public func run(_ input: Tensor) throws -> IntegerRun {
        try execute(input, recordSites: true)
    }

    /// The logits over `input`, in slices of `batchSize` (site codes are not kept); `progress` is told the
    /// samples done and the total after each slice.
    public func predict(_ input: Tensor, batchSize: Int = 32, progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> Tensor {
        guard input.rank >= 1 else { throw IntegerEngineError.inputShapeMismatch(expected: network.graph.inputs[0].dimensions, got: input.shape) }
        try checkInput(input, of: network.graph, batchSize: batchSize)
        return try input.mapBatches(of: batchSize, progress: progress) { try execute($0, recordSites: false).logits }
    }

    func execute(_ input: Tensor, recordSites: Bool) throws -> IntegerRun {
        let info = network.graph.inputs[0]
        guard input.shape.count == info.dimensions.count,
              zip(input.shape, info.dimensions).allSatisfy({ $1 == nil || $0 == $1! }) else {
            throw IntegerEngineError.inputShapeMismatch(expected: info.dimensions, got: input.shape)
        }
        var values: [String: IntegerValue] = [:]
        var codes: [String: [Int32]] = [:], shapes: [String: [Int]] = [:]
        func store(_ value: IntegerValue, at name: String) {
            let settled = settle(value, at: name)
            if recordSites, sites[name] != nil, case .codes(let t) = settled {
                codes[name] = t.codes
                shapes[name] = t.shape
            }
            values[name] = settled
        }
        store(.codes(quantizeInput(input)), at: inputName)

        for (index, step) in steps.enumerated() {
            func operand(_ name: String) throws -> IntegerValue {
                guard let v = values[name] else { throw ExecutionError.undefinedTensor(node: "step \(index)", tensor: name) }
                return v
            }
            func codeOperand(_ name: String, node: String) throws -> CodeTensor {
                guard case .codes(let t) = try operand(name) else { throw IntegerEngineError.unquantizedInput(node: node, tensor: name) }
                return t
            }
            let result: IntegerValue
            switch step {
            case .layer(let kernel, let input, _):
                result = try kernel.forward(try codeOperand(input, node: kernel.node))
            case .add(let node, let a, let b, _, let site):
                result = try IntegerElementwise.add(try operand(a), try operand(b), site: site, node: node)
            case .clamp(_, let lo, let hi, let input, _):
                result = IntegerElementwise.clamp(try operand(input), lo: lo, hi: hi)
            case .maxPool(let window, let input, _):
                result = .codes(IntegerPooling.maxPool(try codeOperand(input, node: "MaxPool"), window: window))
            case .averagePool(let window, let includePad, let input, let site):
                result = .codes(IntegerPooling.averagePool(try operand(input), window: window, countIncludePad: includePad, site: site))
            case .globalAverageSum(let input, _):
                result = .accumulator(IntegerPooling.globalAverageSum(try operand(input)))
            case .globalAveragePool(let input, let site):
                result = .codes(IntegerPooling.globalAveragePool(try operand(input), site: site))
            case .reshape(let node, let op, let input, _):
                let x = try operand(input)
                result = x.reshaped(try reshapedShape(x.shape, op: op, node: node))
            case .concat(let axis, let inputs, let output, let target):
                let parts = try inputs.map { name -> CodeTensor in
                    guard let target else { return try codeOperand(name, node: "Concat") }
                    let value = try operand(name)
                    if case .codes(let t) = value, t.quantizer == target { return t }
                    return IntegerElementwise.requantize(value, to: OutputSite(tensor: output, quantizer: target, range: target.fullRange))
                }
                result = .codes(try IntegerElementwise.concat(parts, axis: axis))
            case .transpose(let permutation, let input, _):
                var x = try codeOperand(input, node: "Transpose")
                guard permutation.sorted() == Array(0..<x.shape.count) else {
                    throw IntegerEngineError.inconsistentInput(node: "Transpose", detail: "perm \(permutation) does not fit shape \(x.shape)")
                }
                x.codes = Shaping.transposed(x.codes, shape: x.shape, permutation: permutation)
                x.shape = permutation.map { x.shape[$0] }
                result = .codes(x)
            case .lookup(_, let table, let input, let site):
                let x = try codeOperand(input, node: "lookup")
                let low = Int32(x.quantizer.grid.qmin)
                result = .codes(CodeTensor(shape: x.shape, codes: x.codes.map { table[Int($0 - low)] }, quantizer: site.quantizer))
            case .float(let node, let input, let site):
                let x = dequantize(.codes(try codeOperand(input, node: node.name)))
                let parameters = node.inputs.dropFirst().map { $0.isEmpty ? nil : network.graph.initializers[$0] }
                let y = try NodeEvaluator.forward(node, [x] + parameters)[0]
                result = .codes(quantize(y, onto: site))
            case .multiply(let node, let a, let b, _, let site):
                result = try IntegerElementwise.multiply(try codeOperand(a, node: node), try codeOperand(b, node: node), site: site, node: node)
            case .slice(let axis, let range, let input, _):
                var x = try codeOperand(input, node: "Slice")
                guard axis < x.shape.count, range.upperBound <= x.shape[axis] else {
                    throw IntegerEngineError.inconsistentInput(node: "Slice", detail: "elements \(range) of axis \(axis) do not fit shape \(x.shape)")
                }
                let outer = Array(x.shape[..<axis]).shapeProduct, inner = Array(x.shape[(axis + 1)...]).shapeProduct
                let extent = x.shape[axis]
                x.codes = (0..<outer).flatMap { o in x.codes[(o * extent + range.lowerBound) * inner ..< (o * extent + range.upperBound) * inner] }
                x.shape[axis] = range.count
                result = .codes(x)
            }
            store(result, at: step.output)
            for name in releaseAfter[index] { values[name] = nil }
        }
        guard let out = values[outputName] else { throw ExecutionError.unknownTensor(name: outputName) }
        var logits = dequantize(out)
        if let axis = outputSoftmaxAxis { logits = Activation.softmax(logits, axis: axis < 0 ? axis + logits.rank : axis) }
        return IntegerRun(logits: logits, codes: codes, shapes: shapes)
    }

    /// `q = clamp(round_half_even(x / s) + z)`: the only float-to-integer conversion of a run.
    func quantizeInput(_ x: Tensor) -> CodeTensor {
        let q = inputQuantizer, s = PowerOfTwo.value(q.exponent), z = Float(q.zeroPoint)
        let codes = x.data.map { Int32(UniformQuantization.code($0, scale: s, zeroPoint: z, grid: q.grid)) }
        return CodeTensor(shape: x.shape, codes: codes, quantizer: q)
    }

    /// `clamp(round_half_even(y / s) + z)` onto `site`'s grid and range, as the simulation quantizes there.
    func quantize(_ y: Tensor, onto site: OutputSite) -> CodeTensor {
        let q = site.quantizer, s = PowerOfTwo.value(q.exponent), z = Float(q.zeroPoint)
        let codes = y.data.map { v in
            Int32(Swift.min(Swift.max(Int64(UniformQuantization.code(v, scale: s, zeroPoint: z, grid: q.grid)), site.range.lowerBound),
                            site.range.upperBound))
        }
        return CodeTensor(shape: y.shape, codes: codes, quantizer: q)
    }

    /// A value stored at a site takes the site's quantizer (codes of another quantizer or an accumulator
    /// are requantized onto it); elsewhere it is left as it is.
    func settle(_ value: IntegerValue, at name: String) -> IntegerValue {
        guard let q = sites[name] else { return value }
        if case .codes(let t) = value, t.quantizer == q { return value }
        return .codes(IntegerElementwise.requantize(value, to: OutputSite(tensor: name, quantizer: q, range: q.fullRange)))
    }

    /// The logits as Float: `v * 2^e` (accumulator) or `(q - z) * 2^e` (codes).
    func dequantize(_ value: IntegerValue) -> Tensor {
        switch value {
        case .codes(let t):
            let s = PowerOfTwo.double(t.quantizer.exponent), z = Int64(t.quantizer.zeroPoint)
            return Tensor(shape: t.shape, data: t.codes.map { Float(Double(Int64($0) - z) * s) })
        case .accumulator(let t):
            let scales = t.exponents.map(PowerOfTwo.double)
            return Tensor(shape: t.shape, data: t.values.indices.map { i in
                Float(Double(t.values[i]) * scales[(i / t.inner) % scales.count] / Double(t.divisor))
            })
        }
    }

    func reshapedShape(_ shape: [Int], op: Operator, node: String) throws -> [Int] {
        switch op {
        case .flatten(let axis):
            let a = axis < 0 ? axis + shape.count : axis
            guard a >= 0, a <= shape.count else { throw IntegerEngineError.inconsistentInput(node: node, detail: "flatten axis \(axis) out of range for \(shape)") }
            return [Array(shape[..<a]).shapeProduct, Array(shape[a...]).shapeProduct]
        case .reshape(let target, let allowZero):
            guard let s = ShapeRules.reshape(shape, to: target, allowZero: allowZero) else {
                throw IntegerEngineError.inconsistentInput(node: node, detail: "cannot reshape \(shape) to \(target)")
            }
            return s
        default:
            return shape
        }
    }
}
