/// Every size a 2-D convolution needs, resolved once from the tensor shapes and `Conv2DParameters`
/// (auto-padding resolved, output size computed) so that the loops see plain integers.
struct ConvolutionGeometry {
    let batch: Int, channels: Int, height: Int, width: Int
    let outputChannels: Int, groups: Int
    /// Input and output channels per group.
    let groupChannels: Int, groupOutputChannels: Int
    let kernelH: Int, kernelW: Int
    let strideH: Int, strideW: Int
    let dilationH: Int, dilationW: Int
    let padTop: Int, padLeft: Int
    let outputH: Int, outputW: Int

    init(input: [Int], weight: [Int], parameters: Conv2DParameters) {
        precondition(input.count == 4 && weight.count == 4, "Conv2D expects NCHW input and MCkk weight, got \(input), \(weight)")
        let window = parameters.window
        batch = input[0]; channels = input[1]; height = input[2]; width = input[3]
        outputChannels = weight[0]; groups = parameters.groups
        precondition(groups >= 1 && channels % groups == 0 && outputChannels % groups == 0, "bad group count \(groups)")
        groupChannels = channels / groups
        groupOutputChannels = outputChannels / groups
        precondition(weight[1] == groupChannels, "weight \(weight) does not match \(channels) channels in \(groups) groups")
        kernelH = weight[2]; kernelW = weight[3]
        precondition(window.kernel.h == kernelH && window.kernel.w == kernelW, "window kernel does not match weight \(weight)")
        strideH = window.strides.h; strideW = window.strides.w
        dilationH = window.dilations.h; dilationW = window.dilations.w
        let pads = window.resolvedPads(height: height, width: width)
        padTop = pads.top; padLeft = pads.left
        var plain = window
        plain.ceilMode = false
        let out = plain.outputSize(height: height, width: width)
        outputH = out.h; outputW = out.w
    }

    var outputShape: [Int] { [batch, outputChannels, outputH, outputW] }
    /// Input and output elements per image plane.
    var inputPlane: Int { height * width }
    var outputPlane: Int { outputH * outputW }
    /// Rows of the im2col matrix of one group: `C/groups · kH · kW`.
    var patchSize: Int { groupChannels * kernelH * kernelW }
    /// Weight elements of one group.
    var groupWeightCount: Int { groupOutputChannels * patchSize }

    /// A 1×1, stride-1, unpadded convolution: the input plane already is the im2col matrix.
    var isPointwise: Bool {
        kernelH == 1 && kernelW == 1 && strideH == 1 && strideW == 1 && padTop == 0 && padLeft == 0
            && outputH == height && outputW == width
    }

    /// One input channel per group and one output channel per group: a direct kernel beats im2col.
    var isDepthwise: Bool { groups == channels && groups == outputChannels }

    /// Output rows per im2col tile: the tile of `patchSize × rows·OW` floats stays near 1 MiB, the
    /// size of a core's L2 cache, so that BLAS reads the patches im2col has just written from cache.
    var tileRows: Int {
        Swift.max(1, Swift.min(outputH, (1 << 18) / Swift.max(1, patchSize * outputW)))
    }

    /// The output positions `o` along one axis whose tap `i = o·stride − pad + offset` lands in `0..<size`.

    static func validRange(offset: Int, pad: Int, stride: Int, size: Int, outputs: Int) -> Range<Int> {
        // o·stride ≥ pad − offset  and  o·stride ≤ size − 1 + pad − offset
        let lo = ceilDivide(pad - offset, stride)
        let hi = floorDivide(size - 1 + pad - offset, stride) + 1
        let l = Swift.min(Swift.max(lo, 0), outputs), h = Swift.min(Swift.max(hi, 0), outputs)
        return l..<Swift.max(l, h)
    }
}

/// `⌊a / b⌋` for `b > 0` and any sign of `a`.
func floorDivide(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }
/// `⌈a / b⌉` for `b > 0` and any sign of `a`.
func ceilDivide(_ a: Int, _ b: Int) -> Int { a >= 0 ? (a + b - 1) / b : -((-a) / b) }
