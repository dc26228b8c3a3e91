import Foundation
import Graph
import TensorKernels

/// Which activation sites `ActivationAlignment` may rescale.
public enum AlignmentScope: String, Codable, Sendable, CaseIterable {
    /// None.
    case off
    /// Sites reached from their layer through Clip nodes or directly, not through a Relu. The default: on the
    /// Fashion-MNIST ResNet (Relu only) aligning its Relu sites cost 0.29-0.37 points at W3A3 on two seeds and
    /// 0.1 at W2A4, while the Clip (ReLU6) and linear sites of MobileNetV2 and EfficientNet-Lite0 gained 0.8-5
    /// points (docs/BENCHMARKS.md).
    case clip
    /// Relu sites too.
    case all
}

/// Rescales the FP32 network so that activation ranges sit on powers of two, without changing what it computes.
///
/// A per-tensor power-of-two activation scale is often a factor of 1.3-1.5 away from the range search's float
/// scale; at 4 bits that costs as much accuracy as the weights' power-of-two scales do (on EfficientNet-Lite0
/// W4A4 after reconstruction, float activation scales on the same weights lower the mean KL to FP32 on held-out
/// crops from 0.92 to 0.67; docs/BENCHMARKS.md). Where a site's tensor comes from one layer directly or through
/// Clip nodes (in scope `.all` also Relu nodes) and is read only by layers, the network is rewritten as `α·y`
/// there: the producing layer's weights and bias and the Clip bounds times `α`, every reading layer's weights
/// divided by `α` (Relu and Clip commute with a positive factor, and a reading layer is linear in its input).
/// With `α = 2^round(log2 s) / s` the site's float scale becomes a power of two, so the power-of-two quantizer
/// there loses nothing to the float one. The factor is folded into weights that are quantized afterwards, whose
/// per-channel power-of-two scales are chosen as usual.
public struct ActivationAlignment: Equatable, Sendable {
    /// The factor `α` of each rescaled site, by tensor name.
    public var factors: [String: Float]
    /// How many sites were looked at.
    public var sites: Int

    /// Rescales `prepared.graph` at every site of `sites` eligible under `scope`, from the float range search on
    /// the FP32 activations of the first `count` samples of `calibration`.
    @discardableResult
    public static func apply(to prepared: inout PreparedNetwork, sites: [ActivationSite], calibration: Tensor, count: Int,
                             scope: AlignmentScope = .clip) throws -> ActivationAlignment {
        guard scope != .off else { return ActivationAlignment(factors: [:], sites: sites.count) }
        let plans = eligiblePlans(in: prepared.graph, sites: sites, throughRelu: scope == .all)
        guard !plans.isEmpty else { return ActivationAlignment(factors: [:], sites: sites.count) }
        let scales = try floatScales(of: prepared.graph, sites: sites.filter { plans[$0.tensor] != nil }, calibration: calibration, count: count)
        var factors: [String: Float] = [:]
        for site in sites {
            guard let plan = plans[site.tensor], let s = scales[site.tensor], s > 0, s.isFinite else { continue }
            let alpha = factor(forScale: s)
            guard alpha != 1 else { continue }
            rescale(&prepared.graph, plan: plan, by: alpha)
            factors[site.tensor] = alpha
        }
        return ActivationAlignment(factors: factors, sites: sites.count)
    }

    /// `2^round(log2 s) / s`: the factor that puts scale `s` on the nearest power of two in log2 (ties away from zero).
    public static func factor(forScale s: Float) -> Float {
        let e = Int(log2(Double(s)).rounded(.toNearestOrAwayFromZero))
        return Float(Double(PowerOfTwo.value(e)) / Double(s))
    }

    /// What rescaling one site touches.
    struct Plan: Equatable {
        /// The layer whose output reaches the site.
        var producer: Int
        /// The Relu/Clip nodes between them.
        var activations: [Int]
        /// The layers reading the site.
        var readers: [Int]
    }

    /// The sites that can be rescaled: the tensor is produced by a Conv/Gemm through Clip nodes (and Relu nodes
    /// with `throughRelu`), each intermediate tensor read by the next node alone; every reader of the tensor is a
    /// Conv/Gemm reading it as its data input; no tensor involved is a graph output; weights and biases belong to
    /// their layer alone.
    static func eligiblePlans(in graph: Graph, sites: [ActivationSite], throughRelu: Bool) -> [String: Plan] {
        var readers: [String: [Int]] = [:]
        for (i, node) in graph.nodes.enumerated() {
            for name in Set(node.inputs) where !name.isEmpty { readers[name, default: []].append(i) }
        }
        var producer: [String: Int] = [:]
        for (i, node) in graph.nodes.enumerated() { for name in node.outputs { producer[name] = i } }
        let outputs = Set(graph.outputs.map(\.name))
        let siteNames = Set(sites.map(\.tensor))
        func isLayer(_ i: Int) -> Bool {
            switch graph.nodes[i].op { case .conv, .gemm: return true; default: return false }
        }
        func ownsParameters(_ i: Int) -> Bool {
            let node = graph.nodes[i]
            return node.inputs.count >= 2 && node.inputs.dropFirst().allSatisfy {
                $0.isEmpty || (graph.initializers[$0] != nil && readers[$0] == [i])
            }
        }
        /// The layer whose output reaches `t` through allowed activation nodes, each intermediate tensor read by
        /// the next node alone, and those nodes; nil if there is none.
        func source(of t: String) -> (layer: Int, activations: [Int])? {
            guard var p = producer[t] else { return nil }
            var activations: [Int] = []
            while !isLayer(p) {
                switch graph.nodes[p].op {
                case .clip: break
                case .relu where throughRelu: break
                default: return nil
                }
                let input = graph.nodes[p].inputs[0]
                guard readers[input] == [p], !outputs.contains(input), !siteNames.contains(input), let q = producer[input] else { return nil }
                activations.append(p)
                p = q
            }
            return (p, activations)
        }
        var plans: [String: Plan] = [:]
        for site in sites {
            let t = site.tensor
            guard !outputs.contains(t), let (p, activations) = source(of: t), ownsParameters(p), let reading = readers[t], !reading.isEmpty,
                  reading.allSatisfy({ isLayer($0) && graph.nodes[$0].inputs[0] == t && !graph.nodes[$0].inputs.dropFirst().contains(t) && ownsParameters($0) })
            else { continue }
            plans[t] = Plan(producer: p, activations: activations, readers: reading)
        }
        return plans
    }

    /// The float L2.4 scale of each site on the FP32 network (no quantizer applied anywhere).
    static func floatScales(of graph: Graph, sites: [ActivationSite], calibration: Tensor, count: Int) throws -> [String: Float] {
        let batch = calibration.rows(0..<Swift.min(count, calibration.shape[0]))
        let bySite = Dictionary(uniqueKeysWithValues: sites.map { ($0.tensor, $0) })
        var scales: [String: Float] = [:]
        _ = try Executor(graph: graph).run([graph.inputs[0].name: batch]) { name, tensor in
            guard let site = bySite[name] else { return }
            let sample = tensor.withUnsafeBufferPointer { ScaleSearch.strided($0) }
            scales[name] = sample.withUnsafeBufferPointer { ScaleSearch.searchFloat($0, grid: QuantizationGrid(bits: site.bits, signed: false)).scale }
        }
        return scales
    }

    /// Multiplies the producer's weights, bias and Clip bounds by `alpha` and divides the readers' weights by it.
    static func rescale(_ graph: inout Graph, plan: Plan, by alpha: Float) {
        func scaleInitializer(_ name: String, _ factor: Float) {
            guard !name.isEmpty, var t = graph.initializers[name] else { return }
            t.withUnsafeMutableBufferPointer { b in for i in b.indices { b[i] *= factor } }
            graph.initializers[name] = t
        }
        for name in graph.nodes[plan.producer].inputs.dropFirst() { scaleInitializer(name, alpha) }
        for i in plan.activations {
            if case .clip(let lo, let hi) = graph.nodes[i].op { graph.nodes[i].op = .clip(min: lo * alpha, max: hi * alpha) }
        }
        for i in plan.readers { scaleInitializer(graph.nodes[i].inputs[1], 1 / alpha) }
    }
}
