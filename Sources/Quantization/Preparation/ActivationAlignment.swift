import Foundation
import Graph
import TensorKernels

/// Which activation sites `ActivationAlignment` may rescale.
public enum AlignmentScope: String, Codable, Sendable, CaseIterable {
    /// None.
    case off
    /// Sites reached from their layer through Clip nodes or directly, not through a Relu, and not joined to others
    /// by an Add.
    case clip
    /// Those and the residual streams: tensors joined by Adds, rescaled together by one factor. The default: on
    /// EfficientNet-Lite0 W4A4 the streams took top-1 on held-out crops from 69.5% to 77% and the KL to FP32 from
    /// 0.82 to 0.70 (float-scale BRECQ: 76.5%, 0.76); on the Fashion-MNIST MobileNetV2 they cost 1.2 points at
    /// W2A4 (three seeds) and nothing clear at W4A4 and W3A3 (docs/BENCHMARKS.md).
    case streams
    /// Streams and Relu sites too. Relu sites are left alone by default: on the Fashion-MNIST ResNet (Relu only)
    /// aligning them cost 0.29-0.37 points at W3A3 on two seeds and 0.1 at W2A4.
    case all

    /// Whether Relu nodes may lie between a site and its layer.
    var throughRelu: Bool { self == .all }
    /// Whether tensors joined by Adds are rescaled together.
    var joinsAdds: Bool { self == .streams || self == .all }
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
/// there loses nothing to the float one.
///
/// In scope `.streams` (and `.all`) tensors joined by Add nodes (a residual stream: the projections that start and
/// extend it and the sums along it) are rescaled too; they can only be rescaled together, since an Add of two rescaled tensors is the rescaled sum. Such a group gets
/// one factor, the one that brings its sites' scales closest to powers of two (`factor(forScales:)`), provided
/// every tensor of it comes from a layer as above or from one of its Adds and is read only by layers or its Adds.
/// The factors are folded into weights that are quantized afterwards, whose per-channel power-of-two scales are
/// chosen as usual.
public struct ActivationAlignment: Equatable, Sendable {
    /// The factor `α` of each rescaled site, by tensor name.
    public var factors: [String: Float]
    /// How many sites were looked at.
    public var sites: Int

    /// Rescales `prepared.graph` at every site of `sites` eligible under `scope`, from the float range search on
    /// the FP32 activations of the first `count` samples of `calibration`.
    @discardableResult
    public static func apply(to prepared: inout PreparedNetwork, sites: [ActivationSite], calibration: Tensor, count: Int,
                             scope: AlignmentScope = .streams) throws -> ActivationAlignment {
        guard scope != .off else { return ActivationAlignment(factors: [:], sites: sites.count) }
        let plans = eligiblePlans(in: prepared.graph, sites: sites, throughRelu: scope.throughRelu, joiningAdds: scope.joinsAdds)
        guard !plans.isEmpty else { return ActivationAlignment(factors: [:], sites: sites.count) }
        let planned = Set(plans.flatMap(\.sites))
        // Every scale is measured on the network as given: rescaling one group leaves the others' tensors alone.
        let scales = try floatScales(of: prepared.graph, sites: sites.filter { planned.contains($0.tensor) }, calibration: calibration, count: count)
        var factors: [String: Float] = [:]
        for plan in plans {
            let measured = plan.sites.compactMap { scales[$0] }
            guard measured.count == plan.sites.count, measured.allSatisfy({ $0 > 0 && $0.isFinite }) else { continue }
            let alpha = factor(forScales: measured)
            guard alpha != 1 else { continue }
            rescale(&prepared.graph, plan: plan, by: alpha)
            for site in plan.sites { factors[site] = alpha }
        }
        return ActivationAlignment(factors: factors, sites: sites.count)
    }

    /// `2^round(log2 s) / s`: the factor that puts scale `s` on the nearest power of two in log2 (ties away from zero).
    public static func factor(forScale s: Float) -> Float {
        let e = Int(log2(Double(s)).rounded(.toNearestOrAwayFromZero))
        return Float(Double(PowerOfTwo.value(e)) / Double(s))
    }

    /// The factor `2^t`, `-1/2 <= t <= 1/2`, that minimises the sum over `scales` of the squared log2 distance from
    /// `α·s` to its nearest power of two; `factor(forScale:)` for a single scale. Ties go to the smaller `|t|`.
    public static func factor(forScales scales: [Float]) -> Float {
        if scales.count == 1 { return factor(forScale: scales[0]) }
        let logs = scales.map { log2(Double($0)) }
        func nearest(_ x: Double) -> Double { x.rounded(.toNearestOrAwayFromZero) }
        func cost(_ t: Double) -> Double { logs.reduce(0) { let d = $1 + t - nearest($1 + t); return $0 + d * d } }
        // Between the shifts at which some scale crosses a half-integer the nearest powers stay the same and the cost
        // is a parabola, least at the mean of (nearest - log2 s) or at an end of the interval.
        let crossings = logs.map { l -> Double in let u = 0.5 - l - (0.5 - l).rounded(.down); return u >= 0.5 ? u - 1 : u }
        let ends = ([-0.5, 0.5] + crossings).sorted()
        var best = (t: 0.0, cost: cost(0))
        for (a, b) in zip(ends, ends.dropFirst()) where b > a {
            let middle = (a + b) / 2
            let mean = logs.reduce(0) { $0 + nearest($1 + middle) - $1 } / Double(logs.count)
            let t = Swift.min(Swift.max(mean, a), b), c = cost(t)
            if c < best.cost - 1e-12 || (abs(c - best.cost) <= 1e-12 && abs(t) < abs(best.t)) { best = (t, c) }
        }
        return Float(exp2(best.t))
    }

    /// What rescaling one group of tensors touches.
    struct Plan: Equatable {
        /// The group's quantized tensors, whose float scales choose the factor.
        var sites: [String]
        /// The layers whose outputs reach the group, directly or through `activations`.
        var producers: [Int]
        /// The Relu/Clip nodes between producers and the group.
        var activations: [Int]
        /// The layers reading the group's tensors.
        var readers: [Int]
    }

    /// The groups that can be rescaled, in the order of their first site: tensors joined by Add nodes (with
    /// `joiningAdds`; otherwise single tensors), each produced by one of the group's Adds or by a Conv/Gemm through
    /// Clip nodes (and Relu nodes with `throughRelu`), each intermediate tensor read by the next node alone; every
    /// reader of a tensor of the group is one of its Adds or a Conv/Gemm reading it as its data input; no tensor
    /// involved is a graph output; weights and biases belong to their layer alone.
    static func eligiblePlans(in graph: Graph, sites: [ActivationSite], throughRelu: Bool, joiningAdds: Bool) -> [Plan] {
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
        func isReadingLayer(_ i: Int, of t: String) -> Bool {
            isLayer(i) && graph.nodes[i].inputs[0] == t && !graph.nodes[i].inputs.dropFirst().contains(t) && ownsParameters(i)
        }

        // Groups: the connected sets of tensors under "is an input or the output of the same Add".
        var parent: [String: String] = [:]
        func root(_ t: String) -> String {
            var t = t
            while let p = parent[t], p != t { t = p }
            return t
        }
        var adds: Set<Int> = []
        for (i, node) in graph.nodes.enumerated() where joiningAdds && node.op == .add {
            adds.insert(i)
            for input in node.inputs where !input.isEmpty {
                let (a, b) = (root(node.outputs[0]), root(input))
                if a != b { parent[b] = a }
            }
        }
        var members: [String: [String]] = [:]
        for name in Set(adds.flatMap { graph.nodes[$0].inputs + graph.nodes[$0].outputs }).union(siteNames).sorted() where !name.isEmpty {
            members[root(name), default: []].append(name)
        }

        /// What rescaling `group` touches, or nil when one of its tensors does not qualify.
        func plan(for group: String) -> Plan? {
            var plan = Plan(sites: sites.map(\.tensor).filter { root($0) == group }, producers: [], activations: [], readers: [])
            for t in members[group] ?? [] {
                guard !outputs.contains(t), let p = producer[t] else { return nil }
                if !adds.contains(p) {
                    guard let (layer, activations) = source(of: t), ownsParameters(layer) else { return nil }
                    plan.producers.append(layer)
                    plan.activations += activations
                }
                guard let reading = readers[t], !reading.isEmpty,
                      reading.allSatisfy({ adds.contains($0) || isReadingLayer($0, of: t) }) else { return nil }
                plan.readers += reading.filter { !adds.contains($0) }
            }
            return plan
        }
        var seen: Set<String> = []
        return sites.map { root($0.tensor) }.filter { seen.insert($0).inserted }.compactMap(plan(for:))
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

    /// Multiplies the producers' weights, biases and Clip bounds by `alpha` and divides the readers' weights by it.
    static func rescale(_ graph: inout Graph, plan: Plan, by alpha: Float) {
        func scaleInitializer(_ name: String, _ factor: Float) {
            guard !name.isEmpty, var t = graph.initializers[name] else { return }
            t.withUnsafeMutableBufferPointer { b in for i in b.indices { b[i] *= factor } }
            graph.initializers[name] = t
        }
        for producer in plan.producers {
            for name in graph.nodes[producer].inputs.dropFirst() { scaleInitializer(name, alpha) }
        }
        for i in plan.activations {
            if case .clip(let lo, let hi) = graph.nodes[i].op { graph.nodes[i].op = .clip(min: lo * alpha, max: hi * alpha) }
        }
        for i in plan.readers { scaleInitializer(graph.nodes[i].inputs[1], 1 / alpha) }
    }
}
