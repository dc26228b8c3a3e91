/// The sizes of a pooling window over NCHW input, resolved once: padding, output size and, for every
/// output row and column, the taps that land inside the input and inside the padded input.
struct PoolingGeometry {
    let planes: Int, height: Int, width: Int
    let outputH: Int, outputW: Int
    /// For each output row: the in-bounds kernel rows `kh` and how many kernel rows fall inside the
    /// padded input (what `count_include_pad` divides by; taps beyond the end padding, which only
    /// `ceil_mode` creates, are never counted).
    let rowTaps: [(valid: Range<Int>, padded: Int)]
    /// The same for each output column.
    let columnTaps: [(valid: Range<Int>, padded: Int)]
    let window: WindowGeometry

    init(input: [Int], window: WindowGeometry) {
        precondition(input.count == 4, "pooling expects NCHW input, got \(input)")
        planes = input[0] * input[1]; height = input[2]; width = input[3]
        self.window = window
        let pads = window.resolvedPads(height: height, width: width)
        let out = window.outputSize(height: height, width: width)
        outputH = out.h; outputW = out.w
        func taps(outputs: Int, size: Int, before: Int, after: Int, kernel: Int, stride: Int, dilation: Int)
            -> [(valid: Range<Int>, padded: Int)] {
            (0..<outputs).map { o in
                let start = o * stride - before
                var lo = kernel, hi = 0, padded = 0
                for k in 0..<kernel {
                    let i = start + k * dilation
                    if i >= 0 && i < size { lo = Swift.min(lo, k); hi = Swift.max(hi, k + 1) }
                    if i >= -before && i < size + after { padded += 1 }
                }
                return (lo < hi ? lo..<hi : 0..<0, padded)
            }
        }
        rowTaps = taps(outputs: outputH, size: height, before: pads.top, after: pads.bottom, kernel: window.kernel.h,
                       stride: window.strides.h, dilation: window.dilations.h)
        columnTaps = taps(outputs: outputW, size: width, before: pads.left, after: pads.right, kernel: window.kernel.w,
                          stride: window.strides.w, dilation: window.dilations.w)
        padTop = pads.top; padLeft = pads.left
    }

    let padTop: Int, padLeft: Int
    var inputPlane: Int { height * width }
    var outputPlane: Int { outputH * outputW }

    /// The input index of tap `k` of output position `o` along the rows / columns.
    func inputRow(_ o: Int, _ k: Int) -> Int { o * window.strides.h - padTop + k * window.dilations.h }
    func inputColumn(_ o: Int, _ k: Int) -> Int { o * window.strides.w - padLeft + k * window.dilations.w }
}
