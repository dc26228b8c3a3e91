import Foundation
import TensorKernels

/// Calibration augmentation: torchvision's RandomResizedCrop (scale 0.08-1, aspect ratio 3/4-4/3) followed by
/// a horizontal flip with probability 1/2, drawn from a seeded generator so that the same seed gives the
/// same crops. The parameters follow torchvision's `get_params`: up to 10 tries of an area fraction
/// s ~ U(0.08, 1) and a ratio r = exp(U(log 3/4, log 4/3)), width round(sqrt(s A r)), height
/// round(sqrt(s A / r)), accepted when it fits, at a uniform offset; otherwise the largest centred crop of
/// ratio clamped to [3/4, 4/3]. The crop is resized to size x size with the preset's interpolation (PIL's).
/// The random numbers are this project's (SplitMix64), not torch's, so crops match torchvision's
/// distribution, not its draws.
public struct RandomResizedCrop: Sendable {
    /// Output side.
    public var size: Int
    /// The resize's interpolation.
    public var interpolation: ResamplingFilter
    /// Range of the crop's area as a fraction of the image's.
    public var scale: ClosedRange<Double> = 0.08...1
    /// Range of the crop's width / height.
    public var ratio: ClosedRange<Double> = (3.0 / 4)...(4.0 / 3)

    /// An augmentation to `size` x `size` crops.
    public init(size: Int, interpolation: ResamplingFilter) {
        self.size = size
        self.interpolation = interpolation
    }

    /// One augmented sample of `image`, drawn from `generator`.
    public func apply(to image: RGBImage, using generator: inout SeededGenerator) -> RGBImage {
        let (left, top, width, height) = region(width: image.width, height: image.height, using: &generator)
        var out = Resampling.resize(image.cropped(left: left, top: top, width: width, height: height), width: size, height: size, filter: interpolation)
        if generator.nextUnit() < 0.5 { out = out.flippedHorizontally() }
        return out
    }

    /// The crop (left, top, width, height) for an image of `width` x `height`.
    func region(width: Int, height: Int, using generator: inout SeededGenerator) -> (Int, Int, Int, Int) {
        let area = Double(width * height)
        let logRatio = (log(ratio.lowerBound), log(ratio.upperBound))
        for _ in 0..<10 {
            let target = area * (scale.lowerBound + (scale.upperBound - scale.lowerBound) * generator.nextUnit())
            let aspect = exp(logRatio.0 + (logRatio.1 - logRatio.0) * generator.nextUnit())
            let w = Int((target * aspect).squareRoot().rounded(.toNearestOrEven))
            let h = Int((target / aspect).squareRoot().rounded(.toNearestOrEven))
            if w > 0, w <= width, h > 0, h <= height {
                let top = Int(generator.next() % UInt64(height - h + 1))
                let left = Int(generator.next() % UInt64(width - w + 1))
                return (left, top, w, h)
            }
        }
        let inRatio = Double(width) / Double(height)
        var w = width, h = height
        if inRatio < ratio.lowerBound {
            h = Int((Double(w) / ratio.lowerBound).rounded(.toNearestOrEven))
        } else if inRatio > ratio.upperBound {
            w = Int((Double(h) * ratio.upperBound).rounded(.toNearestOrEven))
        }
        return ((width - w) / 2, (height - h) / 2, w, h)
    }
}
