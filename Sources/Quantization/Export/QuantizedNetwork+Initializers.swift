extension QuantizedNetwork {
    /// Initializers that only quantized layers read, and only as their weight or bias (inputs 1 and 2):
    /// the integer codes replace them in saved and exported files. An initializer any other node reads is kept.
    var layerOwnedInitializerNames: Set<String> {
        var owned = Set<String>(), shared = Set<String>()
        for node in graph.nodes {
            let isLayer = layers[node.name] != nil
            for (i, name) in node.inputs.enumerated() where graph.initializers[name] != nil {
                if isLayer && (i == 1 || i == 2) { owned.insert(name) } else { shared.insert(name) }
            }
        }
        return owned.subtracting(shared)
    }
}
