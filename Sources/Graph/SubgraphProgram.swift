import TensorKernels

/// Values recorded by a forward pass of a `SubgraphProgram`, needed by its backward pass.
public struct SubgraphTrace: Sendable {
    /// Every tensor the pass read or produced, after the observer had its say.
    public var values: [String: Tensor]
    /// Tensors the observer replaced, as they were before (the backward observer needs them).
    public var unobserved: [String: Tensor]
    /// The program's output.
    public var output: Tensor
}

/// Gradients of a scalar loss with respect to a sub-graph's inputs and parameters.
public struct SubgraphGradients: Sendable {
    /// Gradient per external input tensor (only those asked for).
    public var inputs: [String: Tensor]
    /// Gradient per parameter (initializer) name read by a Conv or Gemm: weights and biases.
    public var parameters: [String: Tensor]
}

/// A run of part of a graph (a reconstruction unit) that can be differentiated: forward records what the
/// backward pass needs; backward propagates an output gradient to inputs and layer parameters.
///
/// Parameters may be overridden per call (AdaRound's soft weights), and an observer may replace tensors as
/// they are produced (fake quantization); the backward observer then maps gradients through that
/// replacement (straight-through estimators).
public struct SubgraphProgram: Sendable {
    /// The nodes, in graph order.
    public let nodes: [Node]
    /// Tensors read from outside the nodes (not initializers).
    public let inputs: [String]
    /// The tensor the program returns.
    public let output: String
    private let initializers: [String: Tensor]

    /// The program for `nodeNames` of `graph` returning `output`.
    public init(graph: Graph, nodeNames: [String], output: String) throws {
        let wanted = Set(nodeNames)
        nodes = graph.nodes.filter { wanted.contains($0.name) }
        guard nodes.count == wanted.count else {
            throw ExecutionError.unknownTensor(name: nodeNames.first { n in !graph.nodes.contains { $0.name == n } } ?? "?")
        }
        let produced = Set(nodes.flatMap(\.outputs))
        guard produced.contains(output) else { throw ExecutionError.unknownTensor(name: output) }
        var external: [String] = []
        for node in nodes {
            for name in node.inputs where !name.isEmpty && graph.initializers[name] == nil && !produced.contains(name) && !external.contains(name) {
                external.append(name)
            }
        }
        inputs = external
        self.output = output
        let read = Set(nodes.flatMap(\.inputs))
        initializers = graph.initializers.filter { read.contains($0.key) }
    }

    /// Runs the nodes on `inputs`; `parameters` override initializers by name; `observe` may return a
    /// replacement for each produced tensor (not the inputs), or nil to keep it.
    public func forward(_ inputs: [String: Tensor], parameters: [String: Tensor] = [:],
                        observe: ((String, Tensor) -> Tensor?)? = nil) throws -> SubgraphTrace {
        var values = inputs
        var unobserved: [String: Tensor] = [:]
        for node in nodes {
            let operands = try node.inputs.map { name -> Tensor? in
                if name.isEmpty { return nil }
                if let v = values[name] ?? parameters[name] ?? initializers[name] { return v }
                throw ExecutionError.undefinedTensor(node: node.name, tensor: name)
            }
            let results = try NodeEvaluator.forward(node, operands)
            for (name, result) in zip(node.outputs, results) {
                if let replacement = observe?(name, result) {
                    unobserved[name] = result
                    values[name] = replacement
                } else {
                    values[name] = result
                }
            }
        }
        return SubgraphTrace(values: values, unobserved: unobserved, output: values[output]!)
    }

    /// Propagates `outputGradient` back through the nodes. `observeGradient(name, unobservedValue, &grad)` is
    /// called for each tensor the forward observer replaced, to turn the gradient w.r.t. the replaced value
    /// into one w.r.t. the original. Input gradients are computed only for `inputGradientsFor`.
    public func backward(_ trace: SubgraphTrace, outputGradient: Tensor, parameters: [String: Tensor] = [:],
                         inputGradientsFor: Set<String> = [],
                         observeGradient: ((String, Tensor, inout Tensor) -> Void)? = nil) -> SubgraphGradients {
        var grads: [String: Tensor] = [output: outputGradient]
        var parameterGrads: [String: Tensor] = [:]
        func accumulate(_ name: String, _ g: Tensor, into store: inout [String: Tensor]) {
            if let existing = store[name] {
                store[name] = Elementwise.add(existing, g)
            } else {
                store[name] = g
            }
        }
        func value(_ name: String) -> Tensor { trace.values[name] ?? parameters[name] ?? initializers[name]! }
        let isParameter = { (name: String) in trace.values[name] == nil }
        let needed = neededGradients(inputs: inputGradientsFor)

        for node in nodes.reversed() {
            guard var g = grads[node.outputs[0]] else { continue }
            grads[node.outputs[0]] = nil
            if let observeGradient, let original = trace.unobserved[node.outputs[0]] { observeGradient(node.outputs[0], original, &g) }
            let x = node.inputs.first.map(value)
            func pass(_ index: Int, _ grad: Tensor) {
                let name = node.inputs[index]
                guard !name.isEmpty else { return }
                if isParameter(name) { accumulate(name, grad, into: &parameterGrads) }
                else if needed.contains(name) { accumulate(name, grad, into: &grads) }
            }
            switch node.op {
            case .conv(let p):
                let needInput = needed.contains(node.inputs[0])
                let r = Conv2D.backward(x!, weight: value(node.inputs[1]), outputGradient: g, parameters: p, needInputGradient: needInput)
                if let gi = r.input { pass(0, gi) }
                pass(1, r.weight)
                if node.inputs.count > 2 { pass(2, r.bias) }
            case .gemm(let alpha, let beta, let ta, let tb):
                let c = node.inputs.count > 2 && !node.inputs[2].isEmpty ? value(node.inputs[2]) : nil
                let r = MatrixMultiply.gemmBackward(x!, value(node.inputs[1]), cShape: c?.shape, alpha: alpha, beta: beta, transA: ta, transB: tb, outputGradient: g)
                pass(0, r.a); pass(1, r.b)
                if let gc = r.c { pass(2, gc) }
            case .matMul:
                let r = MatrixMultiply.matMulBackward(x!, value(node.inputs[1]), outputGradient: g)
                pass(0, r.a); pass(1, r.b)
            case .relu: pass(0, Activation.reluBackward(x!, outputGradient: g))
            case .clip(let lo, let hi): pass(0, Activation.clipBackward(x!, min: lo, max: hi, outputGradient: g))
            case .sigmoid: pass(0, Activation.sigmoidBackward(output: trace.unobserved[node.outputs[0]] ?? value(node.outputs[0]), outputGradient: g))
            case .hardSigmoid(let a, let b): pass(0, Activation.hardSigmoidBackward(x!, alpha: a, beta: b, outputGradient: g))
            case .hardSwish: pass(0, Activation.hardSwishBackward(x!, outputGradient: g))
            case .gelu: pass(0, Activation.geluBackward(x!, outputGradient: g))
            case .erf: pass(0, Activation.erfBackward(x!, outputGradient: g))
            case .layerNormalization(let norm): pass(0, norm.backward(x!, scale: value(node.inputs[1]), outputGradient: g))
            case .add:
                pass(0, Elementwise.reduceGradient(g, to: value(node.inputs[0]).shape))
                pass(1, Elementwise.reduceGradient(g, to: value(node.inputs[1]).shape))
            case .mul:
                let r = Elementwise.mulBackward(x!, value(node.inputs[1]), outputGradient: g)
                pass(0, r.a); pass(1, r.b)
            case .maxPool(let w): pass(0, Pooling.maxPoolBackward(x!, window: w, outputGradient: g))
            case .averagePool(let w, let include):
                pass(0, Pooling.averagePoolBackward(inputShape: x!.shape, window: w, countIncludePad: include, outputGradient: g))
            case .globalAveragePool: pass(0, Pooling.globalAveragePoolBackward(inputShape: x!.shape, outputGradient: g))
            case .flatten, .reshape, .identity: pass(0, g.reshaped(x!.shape))
            case .localResponseNormalization(let lrn): pass(0, lrn.backward(x!, outputGradient: g))
            case .softmax(let axis):
                let y = trace.unobserved[node.outputs[0]] ?? value(node.outputs[0])
                pass(0, Activation.softmaxBackward(output: y, axis: axis < 0 ? axis + y.rank : axis, outputGradient: g))
            case .slice(let axis, let start, let end):
                pass(0, Shaping.sliceBackward(inputShape: x!.shape, axis: axis, range: start..<end, outputGradient: g))
            case .transpose(let permutation): pass(0, Shaping.transpose(g, permutation: Shaping.inversePermutation(permutation)))
            case .concat(let axis):
                let shapes = node.inputs.map { value($0).shape }
                let a = axis < 0 ? axis + shapes[0].count : axis
                for (i, gi) in Shaping.concatBackward(shapes: shapes, axis: a, outputGradient: g).enumerated() { pass(i, gi) }
            case .batchNormalization:
                // Inference BN is affine per channel: dL/dx = g * scale / sqrt(var + eps).
                if case .batchNormalization(let eps) = node.op {
                    let scale = value(node.inputs[1]).data, variance = value(node.inputs[4]).data
                    let factor = Tensor(shape: [1, scale.count] + Array(repeating: 1, count: Swift.max(0, x!.rank - 2)),
                                        data: zip(scale, variance).map { $0 / ($1 + eps).squareRoot() })
                    pass(0, Elementwise.mul(g, factor))
                }
            }
        }
        var inputGrads: [String: Tensor] = [:]
        for name in inputGradientsFor { inputGrads[name] = grads[name] }
        return SubgraphGradients(inputs: inputGrads, parameters: parameterGrads)
    }

    /// Tensors whose gradients must be propagated: everything produced inside, plus the requested inputs.
    private func neededGradients(inputs wanted: Set<String>) -> Set<String> {
        Set(nodes.flatMap(\.outputs)).union(wanted)
    }
}
