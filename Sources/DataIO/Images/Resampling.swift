import Foundation

/// The interpolation of a resize, with PIL's `Image.resize` semantics (which torchvision uses for PIL images).
public enum ResamplingFilter: String, Sendable, CaseIterable {
    case nearest, bilinear, bicubic

    /// Half-width of the kernel at scale 1 (input pixels).
    var support: Double {
        switch self {
        case .nearest: return 0
        case .bilinear: return 1
        case .bicubic: return 2
        }
    }

    /// The kernel: bilinear the triangle 1 - |x|; bicubic Keys' cubic with a = -0.5,
    /// (a + 2)|x|^3 - (a + 3)|x|^2 + 1 for |x| < 1 and a (|x|^3 - 5|x|^2 + 8|x| - 4) for 1 <= |x| < 2.
    func weight(_ x: Double) -> Double {
        let x = abs(x)
        switch self {
        case .nearest: return x < 0.5 ? 1 : 0
        case .bilinear: return x < 1 ? 1 - x : 0
        case .bicubic:
            let a = -0.5
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        }
    }
}

/// Resizing of 8-bit images exactly as PIL's `Image.resize` (Pillow's `ImagingResample`).
///
/// Bilinear and bicubic are separable convolutions, horizontal pass first, then vertical. For an output
/// of n pixels from an input of m, scale = m / n and the kernel is widened by f = max(scale, 1): output
/// pixel i is centred at c = (i + 0.5) scale and takes the inputs j from floor-rounded c - s f + 0.5 to
/// c + s f + 0.5 (s the support) with weights k((j - c + 0.5) / f), normalised to sum 1. Widening the
/// kernel when downscaling is the antialiasing: every input pixel contributes. The weights are then made
/// fixed point with 22 fraction bits (rounded half away from zero), each output sample is
/// (2^21 + sum w_j x_j) >> 22 clamped to 0...255, and the horizontal pass's result is stored as 8 bits
/// before the second pass, as PIL's intermediate image is. A pass whose size does not change is skipped.
///
/// Pass order: horizontal first, except when the height shrinks by more than twice as many pixels as the
/// width (h - h' > 2 (w - w'), h' < h): then vertical first, as Pillow 13 does (python-pillow/Pillow#9549;
/// the rule was measured on 400 random sizes and at its ties). Pillow 12 and earlier always go horizontal
/// first; the two differ by 1 in some samples of such resizes only, which a shorter-side resize meets only
/// for images more than about twice as tall as wide.
///
/// Nearest takes, for output pixel i, input floor(c) with c accumulated as 0.5 scale + i scale in doubles
/// (PIL's affine scaling loop).
public enum Resampling {
    /// Fraction bits of PIL's fixed-point weights for 8-bit images: 32 - 8 - 2.
    static let precisionBits = 22

    /// `image` resized to `width` x `height` with `filter`.
    public static func resize(_ image: RGBImage, width: Int, height: Int, filter: ResamplingFilter) -> RGBImage {
        precondition(width > 0 && height > 0, "resize to an empty image")
        if width == image.width && height == image.height { return image }
        if filter == .nearest { return nearest(image, width: width, height: height) }
        let horizontalPass = { (image: RGBImage) in
            width == image.width ? image : horizontal(image, FixedPointWeights(input: image.width, output: width, filter: filter))
        }
        let verticalPass = { (image: RGBImage) in
            height == image.height ? image : vertical(image, FixedPointWeights(input: image.height, output: height, filter: filter))
        }
        if verticalFirst(from: image, width: width, height: height) { return horizontalPass(verticalPass(image)) }
        return verticalPass(horizontalPass(image))
    }

    /// Pillow 13's pass order: vertical first when h' < h and h - h' > 2 (w - w').
    static func verticalFirst(from image: RGBImage, width: Int, height: Int) -> Bool {
        height < image.height && image.height - height > 2 * (image.width - width)
    }

    /// The weights of one pass: for each output pixel, the first input index, how many inputs, and their
    /// fixed-point weights (`stride` per output pixel).
    struct FixedPointWeights {
        var first: [Int] = []
        var count: [Int] = []
        var weights: [Int32] = []
        var stride = 0

        init(input: Int, output: Int, filter: ResamplingFilter) {
            let scale = Double(input) / Double(output)
            let widening = max(scale, 1)
            let support = filter.support * widening
            stride = Int(support.rounded(.up)) * 2 + 1
            weights = [Int32](repeating: 0, count: output * stride)
            var row = [Double](repeating: 0, count: stride)
            for i in 0..<output {
                let centre = (Double(i) + 0.5) * scale
                // C's (int) conversion truncates toward zero; a negative start is clamped to 0 anyway.
                let low = max(Int(centre - support + 0.5), 0)
                let high = min(Int(centre + support + 0.5), input)
                let n = high - low
                var total = 0.0
                for j in 0..<n {
                    row[j] = filter.weight((Double(j + low) - centre + 0.5) / widening)
                    total += row[j]
                }
                for j in 0..<n {
                    let w = total != 0 ? row[j] / total : row[j]
                    let fixed = w * Double(1 << Resampling.precisionBits)
                    weights[i * stride + j] = Int32(w < 0 ? (fixed - 0.5).rounded(.towardZero) : (fixed + 0.5).rounded(.towardZero))
                }
                first.append(low)
                count.append(n)
            }
        }
    }

    /// (2^21 + sum) >> 22, clamped to 0...255 (the shift floors negative sums).
    @inline(__always) static func clamp8(_ sum: Int32) -> UInt8 {
        UInt8(clamping: sum >> Int32(precisionBits))
    }

    static func horizontal(_ image: RGBImage, _ w: FixedPointWeights) -> RGBImage {
        let width = w.first.count, height = image.height, inWidth = image.width
        var out = [UInt8](repeating: 0, count: width * height * 3)
        image.pixels.withUnsafeBufferPointer { source in
            w.weights.withUnsafeBufferPointer { k in
                out.withUnsafeMutableBufferPointer { target in
                    for y in 0..<height {
                        let row = y * inWidth * 3
                        for x in 0..<width {
                            let low = w.first[x], n = w.count[x], base = x * w.stride
                            var r: Int32 = 1 << 21, g: Int32 = 1 << 21, b: Int32 = 1 << 21
                            for j in 0..<n {
                                let weight = k[base + j], p = row + (low + j) * 3
                                r &+= Int32(source[p]) &* weight
                                g &+= Int32(source[p + 1]) &* weight
                                b &+= Int32(source[p + 2]) &* weight
                            }
                            let o = (y * width + x) * 3
                            target[o] = clamp8(r); target[o + 1] = clamp8(g); target[o + 2] = clamp8(b)
                        }
                    }
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }

    static func vertical(_ image: RGBImage, _ w: FixedPointWeights) -> RGBImage {
        let height = w.first.count, rowLength = image.width * 3
        var out = [UInt8](repeating: 0, count: rowLength * height)
        var sums = [Int32](repeating: 0, count: rowLength)
        image.pixels.withUnsafeBufferPointer { source in
            w.weights.withUnsafeBufferPointer { k in
                out.withUnsafeMutableBufferPointer { target in
                    sums.withUnsafeMutableBufferPointer { acc in
                        for y in 0..<height {
                            let low = w.first[y], n = w.count[y], base = y * w.stride
                            for i in 0..<rowLength { acc[i] = 1 << 21 }
                            for j in 0..<n {
                                let weight = k[base + j], row = (low + j) * rowLength
                                for i in 0..<rowLength { acc[i] &+= Int32(source[row + i]) &* weight }
                            }
                            for i in 0..<rowLength { target[y * rowLength + i] = clamp8(acc[i]) }
                        }
                    }
                }
            }
        }
        return RGBImage(width: image.width, height: height, pixels: out)
    }

    static func nearest(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        func sources(_ input: Int, _ output: Int) -> [Int] {
            let step = Double(input) / Double(output)
            var position = step * 0.5
            var indices: [Int] = []
            for _ in 0..<output {
                indices.append(min(Int(position), input - 1))
                position += step
            }
            return indices
        }
        let xs = sources(image.width, width), ys = sources(image.height, height)
        var out = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                let from = (ys[y] * image.width + xs[x]) * 3, to = (y * width + x) * 3
                out[to] = image.pixels[from]; out[to + 1] = image.pixels[from + 1]; out[to + 2] = image.pixels[from + 2]
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }
}
