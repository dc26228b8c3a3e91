import Graph
import TensorKernels

/// Runs a power-of-two quantized network with integers only (METHOD §1-3): the graph input is
/// quantized once, every layer multiplies codes in `Int32`, every rescale is a bit shift with
/// round-half-to-even, and only the logits are turned back into Float. It reproduces `Simulation`'s
/// codes at every activation site (up to the float simulation's own rounding).
///
/// Kernels: Conv (groups, depthwise, strides, pads, dilations, `auto_pad`), Gemm, Add, Mul of two
/// activations (a product of codes, then a shift), Sigmoid, HardSigmoid, HardSwish, Gelu and Erf (a table
/// over the input's codes), Relu, Clip, MaxPool, AveragePool, GlobalAveragePool, Concat (inputs on other grids are
/// shifted onto the output's), Slice, Transpose, Flatten, Reshape, Identity. A Relu or Clip that alone
/// reads a layer's, Add's, product's, table's or pool's output is folded into its requantization.
/// LayerNormalization has no integer kernel: it runs in Float between two quantized tensors (codes
/// dequantized exactly, normalized, quantized onto the output's grid, as the simulation computes it) and is
/// declared by `floatSteps`. Anything else throws `QuantizationError.noIntegerKernel` at init.
public struct IntegerEngine: Sendable {
    /// The network being run.
    public let network: QuantizedNetwork

    /// A tensor's form as planned: codes of a per-tensor quantizer, or an accumulator with per-channel exponents.
    enum Kind {
        case codes(SiteQuantizer)
        case accumulator([Int])
    }

    /// One planned operation.
    enum Step: Sendable {
        case layer(IntegerLayerKernel, input: String, output: String)
        case add(node: String, String, String, output: String, site: OutputSite?)
        case clamp(node: String, lo: Float, hi: Float, input: String, output: String)
        case maxPool(WindowGeometry, input: String, output: String)
        case averagePool(WindowGeometry, countIncludePad: Bool, input: String, site: OutputSite)
        case globalAveragePool(input: String, site: OutputSite)
        case globalAverageSum(input: String, output: String)
        case reshape(node: String, Operator, input: String, output: String)
        case concat(axis: Int, inputs: [String], output: String, onto: SiteQuantizer?)
        case transpose(permutation: [Int], input: String, output: String)
        case slice(axis: Int, range: Range<Int>, input: String, output: String)
        /// A unary function as a table over the input grid: `table[q - qmin]` is the output code.
        case lookup(node: String, table: [Int32], input: String, site: OutputSite)
        /// A node computed in Float on the dequantized input codes, its result quantized onto `site`.
        case float(Node, input: String, site: OutputSite)
        case multiply(node: String, String, String, output: String, site: OutputSite?)

        var inputs: [String] {
            switch self {
            case .layer(_, let i, _), .clamp(_, _, _, let i, _), .maxPool(_, let i, _), .averagePool(_, _, let i, _),
                 .globalAveragePool(let i, _), .globalAverageSum(let i, _), .reshape(_, _, let i, _), .transpose(_, let i, _),
                 .slice(_, _, let i, _), .lookup(_, _, let i, _), .float(_, let i, _): return [i]
            case .multiply(_, let a, let b, _, _): return [a, b]
            case .add(_, let a, let b, _, _): return [a, b]
            case .concat(_, let i, _, _): return i
            }
        }

        var output: String {
            switch self {
            case .layer(_, _, let o), .add(_, _, _, let o, _), .clamp(_, _, _, _, let o), .maxPool(_, _, let o),
                 .reshape(_, _, _, let o), .concat(_, _, let o, _), .transpose(_, _, let o),
                 .slice(_, _, _, let o), .multiply(_, _, _, let o, _),
                 .globalAverageSum(_, let o): return o
            case .lookup(_, _, _, let site), .float(_, _, let site): return site.tensor
            case .averagePool(_, _, _, let site), .globalAveragePool(_, let site): return site.tensor
            }
        }
    }

    let steps: [Step]
    /// For each step, the tensors whose last reader it is.
    let releaseAfter: [[String]]
    let sites: [String: SiteQuantizer]
    let inputName: String
    let inputQuantizer: SiteQuantizer
    let outputName: String
    /// The axis of a Softmax that produces the graph output from `outputName` (computed in Float on the
    /// dequantized logits: the one float step of a run, declared by `floatOutputStep`).
    let outputSoftmaxAxis: Int?

    /// Plans `network` for integer execution; throws if a scale is not a power of two, a zero point not an
    /// integer, or an operator has no integer kernel.
    public init(_ network: QuantizedNetwork) throws {
        self.network = network
        let graph = network.graph
        let method = network.method

        for name in network.layers.keys.sorted() {
            let w = network.layers[name]!.weight
            if w.exponents == nil {
                throw IntegerEngineError.notPowerOfTwo(method: method, detail: "the weight scales of layer '\(name)' are not exact powers of two")
            }
            if w.integerZeroPoints == nil {
                throw IntegerEngineError.notPowerOfTwo(method: method, detail: "the weight zero points of layer '\(name)' are not integers on the grid")
            }
        }
        var sites: [String: SiteQuantizer] = [:]
        for (tensor, parameters) in network.activations.sorted(by: { $0.key < $1.key }) {
            guard let q = SiteQuantizer(parameters) else {
                throw IntegerEngineError.notPowerOfTwo(method: method, detail: "the activation scale or zero point of '\(tensor)' is not a power of two / integer")
            }
            sites[tensor] = q
        }
        self.sites = sites

        guard let input = graph.inputs.first, let output = graph.outputs.first else {
            throw IntegerEngineError.inconsistentInput(node: graph.name, detail: "the graph has no input or no output")
        }
        guard let inputQuantizer = sites[input.name] else { throw IntegerEngineError.unquantizedInput(node: "(graph input)", tensor: input.name) }
        inputName = input.name
        self.inputQuantizer = inputQuantizer
        if let last = graph.nodes.last(where: { $0.outputs.contains(output.name) }), case .softmax(let axis) = last.op {
            outputName = last.inputs[0]
            outputSoftmaxAxis = axis
        } else {
            outputName = output.name
            outputSoftmaxAxis = nil
        }

        var readers: [String: [Int]] = [:]
        for (i, node) in graph.nodes.enumerated() {
            for name in Set(node.inputs) where !name.isEmpty { readers[name, default: []].append(i) }
        }
        let graphOutputs = Set(graph.outputs.map(\.name))

        /// The site an accumulator produced at `tensor` goes to: `tensor` itself, or the end of a chain of
        /// Relu/Clip nodes each alone reading the previous tensor; nil if the chain reaches no site.
        func destination(from tensor: String) -> (site: OutputSite, fused: [Int])? {
            var t = tensor, lo = -Float.infinity, hi = Float.infinity, fused: [Int] = []
            while true {
                if let q = sites[t] { return (OutputSite(tensor: t, quantizer: q, range: q.codeRange(lo: lo, hi: hi)), fused) }
                if graphOutputs.contains(t) { return nil }
                guard let r = readers[t], r.count == 1 else { return nil }
                let reader = graph.nodes[r[0]]
                switch reader.op {
                case .relu: lo = Swift.max(lo, 0)
                case .clip(let a, let b): lo = Swift.max(lo, a); hi = Swift.min(hi, b)
                default: return nil
                }
                fused.append(r[0])
                t = reader.outputs[0]
            }
        }

        var kinds: [String: Kind] = [input.name: .codes(inputQuantizer)]
        var skipped = Set<Int>()
        var steps: [Step] = []
        func kind(of tensor: String, at node: Node) throws -> Kind {
            guard let k = kinds[tensor] else {
                if graph.initializers[tensor] != nil {
                    throw QuantizationError.noIntegerKernel(node: node.name, op: "\(node.op.onnxName) with a constant operand")
                }
                throw IntegerEngineError.inconsistentInput(node: node.name, detail: "reads '\(tensor)', which is not computed before it")
            }
            return k
        }
        /// Whether `tensor` is the graph's output, directly or through Flatten/Reshape/Identity alone.
        let logitsName = outputName
        func reachesOutput(_ tensor: String) -> Bool {
            var t = tensor
            while true {
                if t == logitsName { return true }
                guard let r = readers[t], r.count == 1 else { return false }
                switch graph.nodes[r[0]].op {
                case .flatten, .reshape, .identity: t = graph.nodes[r[0]].outputs[0]
                default: return false
                }
            }
        }
        /// The kind a value has once stored at `tensor` (a site's quantizer replaces what it was).
        func settled(_ k: Kind, at tensor: String) -> Kind { sites[tensor].map { .codes($0) } ?? k }

        for (index, node) in graph.nodes.enumerated() where !skipped.contains(index) {
            let out = node.outputs.first ?? ""
            if outputSoftmaxAxis != nil, node.outputs.contains(output.name) { continue }
            switch node.op {
            case .conv, .gemm:
                guard let layer = network.layers[node.name] else {
                    throw QuantizationError.noIntegerKernel(node: node.name, op: "\(node.op.onnxName) without quantized weights")
                }
                guard case .codes(let q) = try kind(of: node.inputs[0], at: node) else {
                    throw IntegerEngineError.unquantizedInput(node: node.name, tensor: node.inputs[0])
                }
                let dest = destination(from: out)
                let kernel = try IntegerLayerKernel(node: node, layer: layer, input: q, site: dest?.site)
                skipped.formUnion(dest?.fused ?? [])
                let target = dest?.site.tensor ?? out
                steps.append(.layer(kernel, input: node.inputs[0], output: target))
                kinds[target] = dest.map { .codes($0.site.quantizer) } ?? .accumulator(kernel.exponents)
            case .add:
                guard node.inputs.count == 2 else { throw QuantizationError.noIntegerKernel(node: node.name, op: "Add of \(node.inputs.count) inputs") }
                let ka = try kind(of: node.inputs[0], at: node), kb = try kind(of: node.inputs[1], at: node)
                func exps(_ k: Kind) -> [Int] {
                    switch k { case .codes(let q): return [q.exponent]; case .accumulator(let e): return e }
                }
                let ea = exps(ka), eb = exps(kb)
                guard ea.count == eb.count || ea.count == 1 || eb.count == 1 else {
                    throw IntegerEngineError.inconsistentInput(node: node.name, detail: "adds tensors with \(ea.count) and \(eb.count) channels")
                }
                let channels = Swift.max(ea.count, eb.count)
                let merged = (0..<channels).map { Swift.min(ea[ea.count == 1 ? 0 : $0], eb[eb.count == 1 ? 0 : $0]) }
                let dest = destination(from: out)
                skipped.formUnion(dest?.fused ?? [])
                let target = dest?.site.tensor ?? out
                steps.append(.add(node: node.name, node.inputs[0], node.inputs[1], output: target, site: dest?.site))
                kinds[target] = dest.map { .codes($0.site.quantizer) } ?? .accumulator(merged)
            case .relu, .clip:
                let (lo, hi): (Float, Float)
                if case .clip(let a, let b) = node.op { (lo, hi) = (a, b) } else { (lo, hi) = (0, .infinity) }
                let k = try kind(of: node.inputs[0], at: node)
                if case .accumulator(let exponents) = k {
                    // A clamp on an accumulator must land on its integer grid to stay exact.
                    for e in exponents {
                        for bound in [lo, hi] where bound.isFinite {
                            let v = Double(bound) * PowerOfTwo.double(-e)
                            if v.rounded() != v {
                                throw QuantizationError.noIntegerKernel(node: node.name, op: "\(node.op.onnxName) of an unquantized accumulator at a bound off its grid")
                            }
                        }
                    }
                }
                steps.append(.clamp(node: node.name, lo: lo, hi: hi, input: node.inputs[0], output: out))
                kinds[out] = settled(k, at: out)
            case .maxPool(let window):
                guard case .codes = try kind(of: node.inputs[0], at: node) else {
                    throw QuantizationError.noIntegerKernel(node: node.name, op: "MaxPool of an unquantized accumulator")
                }
                steps.append(.maxPool(window, input: node.inputs[0], output: out))
                kinds[out] = settled(kinds[node.inputs[0]]!, at: out)
            case .averagePool, .globalAveragePool:
                let k = try kind(of: node.inputs[0], at: node)
                if node.op == .globalAveragePool, destination(from: out) == nil, reachesOutput(out) {
                    // The logits are a global average: sums in integers, the division when they become Float.
                    steps.append(.globalAverageSum(input: node.inputs[0], output: out))
                    if case .codes(let q) = k { kinds[out] = .accumulator([q.exponent]) } else { kinds[out] = k }
                    continue
                }
                guard let dest = destination(from: out) else {
                    throw QuantizationError.noIntegerKernel(node: node.name, op: "\(node.op.onnxName) whose output has no activation quantizer")
                }
                skipped.formUnion(dest.fused)
                if case .averagePool(let window, let includePad) = node.op {
                    steps.append(.averagePool(window, countIncludePad: includePad, input: node.inputs[0], site: dest.site))
                } else {
                    steps.append(.globalAveragePool(input: node.inputs[0], site: dest.site))
                }
                kinds[dest.site.tensor] = .codes(dest.site.quantizer)
            case .flatten, .reshape, .identity:
                let k = try kind(of: node.inputs[0], at: node)
                steps.append(.reshape(node: node.name, node.op, input: node.inputs[0], output: out))
                kinds[out] = settled(k, at: out)
            case .transpose, .slice:
                // Moves codes only; an accumulator's per-channel exponents follow its layout, so it must be requantized first.
                guard case .codes = try kind(of: node.inputs[0], at: node) else {
                    throw QuantizationError.noIntegerKernel(node: node.name, op: "\(node.op.onnxName) of an unquantized accumulator")
                }
                switch node.op {
                case .slice(let axis, let start, let end):
                    steps.append(.slice(axis: axis, range: start..<end, input: node.inputs[0], output: out))
                case .transpose(let permutation):
                    steps.append(.transpose(permutation: permutation, input: node.inputs[0], output: out))
                default: break
                }
                kinds[out] = settled(kinds[node.inputs[0]]!, at: out)
            case .layerNormalization:
                guard case .codes = try kind(of: node.inputs[0], at: node) else {
                    throw QuantizationError.noIntegerKernel(node: node.name, op: "\(node.op.onnxName) of an unquantized accumulator")
                }
                guard let dest = destination(from: out) else {
                    throw QuantizationError.noIntegerKernel(node: node.name, op: "\(node.op.onnxName) whose output has no activation quantizer")
                }
                for parameter in node.inputs.dropFirst() where !parameter.isEmpty && graph.initializers[parameter] == nil {
                    throw QuantizationError.noIntegerKernel(node: node.name, op: "\(node.op.onnxName) with a computed scale or bias")
                }
                skipped.formUnion(dest.fused)
                steps.append(.float(node, input: node.inputs[0], site: dest.site))
                kinds[dest.site.tensor] = .codes(dest.site.quantizer)
            case .sigmoid, .hardSigmoid, .hardSwish, .gelu, .erf:
                guard case .codes(let q) = try kind(of: node.inputs[0], at: node) else {
                    throw QuantizationError.noIntegerKernel(node: node.name, op: "\(node.op.onnxName) of an unquantized accumulator")
                }
                guard let dest = destination(from: out) else {
                    throw QuantizationError.noIntegerKernel(node: node.name, op: "\(node.op.onnxName) whose output has no activation quantizer")
                }
                skipped.formUnion(dest.fused)
                steps.append(.lookup(node: node.name, table: try Self.table(for: node, from: q, onto: dest.site), input: node.inputs[0], site: dest.site))
                kinds[dest.site.tensor] = .codes(dest.site.quantizer)
            case .mul:
                guard node.inputs.count == 2, case .codes(let qa) = try kind(of: node.inputs[0], at: node),
                      case .codes(let qb) = try kind(of: node.inputs[1], at: node) else {
                    throw QuantizationError.noIntegerKernel(node: node.name, op: "Mul of an unquantized accumulator")
                }
                let dest = destination(from: out)
                skipped.formUnion(dest?.fused ?? [])
                let target = dest?.site.tensor ?? out
                steps.append(.multiply(node: node.name, node.inputs[0], node.inputs[1], output: target, site: dest?.site))
                kinds[target] = dest.map { .codes($0.site.quantizer) } ?? .accumulator([qa.exponent + qb.exponent])
            case .concat(let axis):
                // Inputs on one grid are joined as they are; inputs on different power-of-two grids (or
                // accumulators) are each requantized onto the output site's grid by a shift, which is what the
                // simulation computes when it fake-quantizes the joined values at that site.
                let parts = try node.inputs.map { try kind(of: $0, at: node) }
                var shared: SiteQuantizer?
                for case .codes(let q) in parts where shared == nil { shared = q }
                let uniform = parts.allSatisfy { if case .codes(let q) = $0 { return q == shared } else { return false } }
                if uniform, let shared {
                    steps.append(.concat(axis: axis, inputs: node.inputs, output: out, onto: nil))
                    kinds[out] = settled(.codes(shared), at: out)
                } else if let target = sites[out] {
                    steps.append(.concat(axis: axis, inputs: node.inputs, output: out, onto: target))
                    kinds[out] = .codes(target)
                } else {
                    throw QuantizationError.noIntegerKernel(node: node.name, op: "Concat of inputs with different quantizers and no activation quantizer on its output")
                }
            default:
                throw QuantizationError.noIntegerKernel(node: node.name, op: node.op.onnxName)
            }
        }
        guard kinds[outputName] != nil else {
            throw IntegerEngineError.inconsistentInput(node: graph.name, detail: "the output '\(outputName)' is not computed")
        }
        self.steps = steps

        var lastUse: [String: Int] = [:]
        for (i, step) in steps.enumerated() { for name in step.inputs { lastUse[name] = i } }
        var release = [[String]](repeating: [], count: steps.count)
        for (name, i) in lastUse where name != outputName { release[i].append(name) }
        releaseAfter = release
    }

    /// The output code of `node` (an element-wise function) for every code of the input grid `q`: each code's
    /// value goes through the same Float kernel the simulation runs, and is quantized onto `site`. Exact by
    /// construction for inputs of up to 16 bits.
    static func table(for node: Node, from q: SiteQuantizer, onto site: OutputSite) throws -> [Int32] {
        let codes = Array(q.grid.qmin...q.grid.qmax)
        let x = Tensor(shape: [codes.count], data: codes.map { Float(Double($0 - q.zeroPoint) * PowerOfTwo.double(q.exponent)) })
        let y = try NodeEvaluator.forward(node, [x])[0]
        let s = Float(PowerOfTwo.double(site.quantizer.exponent)), z = Float(site.quantizer.zeroPoint)
        return y.data.map { v in
            let code = Int64(UniformQuantization.code(v, scale: s, zeroPoint: z, grid: site.quantizer.grid))
            return Int32(Swift.min(Swift.max(code, site.range.lowerBound), site.range.upperBound))
        }
    }

    /// The nodes a run computes in Float between quantized tensors (LayerNormalization), in order.
    public var floatSteps: [String] {
        steps.compactMap { if case .float(let node, _, _) = $0 { return "\(node.name) (\(node.op.onnxName))" } else { return nil } }
    }

    /// The step of a run done in Float, if any: a Softmax at the output, on the dequantized logits.
    public var floatOutputStep: String? {
        outputSoftmaxAxis.map { "the output Softmax (axis \($0)) runs in Float on the dequantized logits" }
    }
}
