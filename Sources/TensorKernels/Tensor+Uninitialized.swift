extension Tensor {
    /// A tensor of `shape` whose elements are written by `body`, skipping the zero fill of
    /// `init(shape:repeating:)`. `body` must write every element.

    init(shape: [Int], initializingWith body: (UnsafeMutableBufferPointer<Float>) -> Void) {
        let count = shape.shapeProduct
        let data = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            body(buffer)
            initialized = count
        }
        self.init(shape: shape, data: data)
    }

    /// A tensor of `shape` filled with zeros and then updated by `body` (for kernels that accumulate).

    init(zeros shape: [Int], updatingWith body: (UnsafeMutableBufferPointer<Float>) -> Void) {
        var data = [Float](repeating: 0, count: shape.shapeProduct)
        data.withUnsafeMutableBufferPointer { body($0) }
        self.init(shape: shape, data: data)
    }
}

extension UnsafeBufferPointer where Element == Float {
    /// The base address of a buffer that may be empty (a dangling but never dereferenced pointer then).

    var base: UnsafePointer<Float> {
        baseAddress ?? UnsafePointer(bitPattern: MemoryLayout<Float>.alignment)!
    }
}

extension UnsafeMutableBufferPointer where Element == Float {
    /// The base address of a buffer that may be empty (a dangling but never dereferenced pointer then).

    var base: UnsafeMutablePointer<Float> {
        baseAddress ?? UnsafeMutablePointer(bitPattern: MemoryLayout<Float>.alignment)!
    }
}
