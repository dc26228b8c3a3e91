import Graph
import TensorKernels

/// Finds the reconstruction units of a BN-folded graph from its structure (METHOD §2):
/// residual blocks (convs between a tensor and the Add joining it back, plus a following activation),
/// inverted residuals without an Add (optional expand 1x1, depthwise, linear project 1x1), and single
/// layers (a Conv or Gemm plus the activation that alone reads it) for everything else.
public func findReconstructionUnits(in graph: Graph, gammas: [String: [Float]] = [:]) -> [ReconstructionUnit] {
    let structure = GraphStructure(graph)
    var taken = Set<Int>()
    var units: [(first: Int, unit: ReconstructionUnit)] = []

    // Residual blocks, one per Add of two computed tensors.
    for (addIndex, node) in graph.nodes.enumerated() where node.op == .add {
        guard node.inputs.count == 2, node.inputs.allSatisfy({ graph.initializers[$0] == nil }),
              let block = structure.residualBlock(endingAt: addIndex), block.isDisjoint(with: taken) else { continue }
        var members = block
        var output = node.outputs[0]
        if let act = structure.soleActivation(after: addIndex) { members.insert(act); output = graph.nodes[act].outputs[0] }
        let ordered = members.sorted()
        let layers = ordered.filter { structure.isLayer($0) }
        guard !layers.isEmpty, structure.isClosed(ordered) else { continue }
        taken.formUnion(members)
        let main = structure.mainBranchLayer(of: node, within: Set(ordered))
        units.append((ordered[0], ReconstructionUnit(
            kind: .residualBlock, nodes: ordered.map { graph.nodes[$0].name }, layers: layers.map { graph.nodes[$0].name },
            inputs: structure.externalInputs(ordered), output: output,
            lossLayer: main.flatMap { gammas[graph.nodes[$0].name] != nil ? graph.nodes[$0].name : nil })))
    }

    // Inverted residuals without an Add: [expand 1x1 + act] -> depthwise + act -> linear project 1x1.
    for (index, _) in graph.nodes.enumerated() where structure.isDepthwise(index) && !taken.contains(index) {
        guard let dwAct = structure.soleActivation(after: index), let project = structure.soleReader(of: dwAct),
              structure.isPointwise(project), !taken.contains(project), structure.soleActivation(after: project) == nil
        else { continue }
        var members = [index, dwAct, project]
        if let expandAct = structure.producer(of: graph.nodes[index].inputs[0]), structure.isActivation(expandAct),
           structure.soleReader(of: expandAct) == index,
           let expand = structure.producer(of: graph.nodes[expandAct].inputs[0]), structure.isPointwise(expand),
           structure.soleActivation(after: expand) == expandAct, !taken.contains(expand) {
            members = [expand, expandAct] + members
        }
        guard members.allSatisfy({ !taken.contains($0) }) else { continue }
        taken.formUnion(members)
        let layers = members.filter { structure.isLayer($0) }
        let projectName = graph.nodes[project].name
        units.append((members[0], ReconstructionUnit(
            kind: .invertedResidual, nodes: members.map { graph.nodes[$0].name }, layers: layers.map { graph.nodes[$0].name },
            inputs: structure.externalInputs(members), output: graph.nodes[project].outputs[0],
            lossLayer: gammas[projectName] != nil ? projectName : nil)))
    }

    // Everything else: one unit per layer.
    for index in graph.nodes.indices where structure.isLayer(index) && !taken.contains(index) {
        var members = [index]
        if let act = structure.soleActivation(after: index), !taken.contains(act) { members.append(act) }
        taken.formUnion(members)
        let name = graph.nodes[index].name
        units.append((index, ReconstructionUnit(
            kind: .layer, nodes: members.map { graph.nodes[$0].name }, layers: [name],
            inputs: structure.externalInputs(members), output: graph.nodes[members.last!].outputs[0],
            lossLayer: gammas[name] != nil ? name : nil)))
    }
    return units.sorted { $0.first < $1.first }.map(\.unit)
}

/// Producer/reader indices of a graph's tensors, and the structural predicates unit finding needs.
struct GraphStructure {
    let graph: Graph
    private var producers: [String: Int] = [:]
    private var readers: [String: [Int]] = [:]
    private let outputs: Set<String>

    init(_ graph: Graph) {
        self.graph = graph
        outputs = Set(graph.outputs.map(\.name))
        for (i, node) in graph.nodes.enumerated() {
            for name in node.outputs { producers[name] = i }
            for name in node.inputs where graph.initializers[name] == nil && !name.isEmpty { readers[name, default: []].append(i) }
        }
    }

    func producer(of tensor: String) -> Int? { producers[tensor] }

    /// The only node reading node `index`'s first output, if exactly one reads it and it is not a graph output.
    func soleReader(of index: Int) -> Int? {
        let name = graph.nodes[index].outputs[0]
        guard !outputs.contains(name), let r = readers[name], r.count == 1 else { return nil }
        return r[0]
    }

    func isLayer(_ i: Int) -> Bool {
        switch graph.nodes[i].op { case .conv, .gemm, .matMul: return true; default: return false }
    }

    func isActivation(_ i: Int) -> Bool {
        switch graph.nodes[i].op { case .relu, .clip: return true; default: return false }
    }

    /// The Relu/Clip that alone reads node `index`'s output, which it fuses with.
    func soleActivation(after index: Int) -> Int? {
        guard let r = soleReader(of: index), isActivation(r) else { return nil }
        return r
    }

    func isDepthwise(_ i: Int) -> Bool {
        guard case .conv(let p) = graph.nodes[i].op, p.groups > 1,
              let w = graph.initializers[graph.nodes[i].inputs[1]], w.shape[1] == 1, w.shape[0] == p.groups else { return false }
        return true
    }

    func isPointwise(_ i: Int) -> Bool {
        guard case .conv(let p) = graph.nodes[i].op, p.groups == 1, p.window.kernel == (1, 1) else { return false }
        return true
    }

    /// Indices of every node that computes `tensor`, back to (not including) graph inputs.
    func ancestors(of tensor: String) -> Set<Int> {
        var seen = Set<Int>(), stack = [tensor]
        while let t = stack.popLast() {
            guard let p = producers[t], seen.insert(p).inserted else { continue }
            stack.append(contentsOf: graph.nodes[p].inputs.filter { graph.initializers[$0] == nil && !$0.isEmpty })
        }
        return seen
    }

    /// The nodes between the Add at `addIndex` and the latest tensor both its operands descend from.
    func residualBlock(endingAt addIndex: Int) -> Set<Int>? {
        let add = graph.nodes[addIndex]
        let a = ancestors(of: add.inputs[0]), b = ancestors(of: add.inputs[1])
        let common = a.intersection(b)
        // The split tensor is the latest common ancestor's output (or a graph input when there is none).
        let split = common.max()
        let block = a.union(b).subtracting(common).union([addIndex])
        guard let first = block.min(), split.map({ $0 < first }) ?? true else { return nil }
        return block
    }

    /// Whether every activation a node of `members` reads comes from inside `members` or from one outside tensor set
    /// that is produced before the first member, and only the last member's output is read outside.
    func isClosed(_ members: [Int]) -> Bool {
        let set = Set(members)
        for m in members.dropLast() {
            for name in graph.nodes[m].outputs {
                if outputs.contains(name) { return false }
                if (readers[name] ?? []).contains(where: { !set.contains($0) }) { return false }
            }
        }
        return true
    }

    /// Tensors read by `members` that are produced outside them (graph inputs or earlier nodes).
    func externalInputs(_ members: [Int]) -> [String] {
        let set = Set(members)
        var result: [String] = []
        for m in members {
            for name in graph.nodes[m].inputs where graph.initializers[name] == nil && !name.isEmpty {
                if let p = producers[name], set.contains(p) { continue }
                if !result.contains(name) { result.append(name) }
            }
        }
        return result
    }

    /// The layer on the Add's longer (non-shortcut) operand path that feeds it most directly.
    func mainBranchLayer(of add: Node, within members: Set<Int>) -> Int? {
        let paths = add.inputs.map { ancestors(of: $0).intersection(members) }
        guard let main = paths.max(by: { $0.filter(isLayer).count < $1.filter(isLayer).count }) else { return nil }
        return main.filter(isLayer).max()
    }
}
