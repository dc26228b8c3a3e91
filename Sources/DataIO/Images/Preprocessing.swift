import Foundation

/// How an RGB image becomes a model input: resize, centre crop, normalisation, channel order, layout.
///
/// For a pixel value x in 0...255 (after the 8-bit resize and crop) and output channel c:
/// y = (x / scale - mean[c]) / std[c], each step rounded to Float as torch and numpy do in float32.
/// `mean` and `std` are in the order of the output channels (after `channels`), as the frameworks state
/// them (torchvision in RGB, Caffe in BGR).
public struct Preprocessing: Sendable, Equatable {
    /// Output channels: RGB, BGR, or one gray channel (PIL's `convert("L")`, taken before the resize as
    /// a PIL pipeline on an "L" image does).
    public enum ChannelOrder: String, Sendable, CaseIterable {
        case rgb, bgr, gray

        /// Channels of the model input.
        public var count: Int { self == .gray ? 1 : 3 }
    }
    /// Output layout of a batch: channels first (N, C, H, W) or last (N, H, W, C).
    public enum Layout: String, Sendable, CaseIterable { case nchw, nhwc }

    /// Resize so that the shorter side is this long (the longer side int(resize * long / short), as
    /// torchvision's Resize(int)); nil keeps the size.
    public var resize: Int?
    /// Centre crop to crop x crop, offsets round((size - crop) / 2) with ties to even (Python's round, as
    /// torchvision's CenterCrop); nil keeps the whole image.
    public var crop: Int?
    /// The resize's interpolation.
    public var interpolation: ResamplingFilter
    /// Divides the 0...255 values first (255 maps them to 0...1, as torchvision's ToTensor).
    public var scale: Float
    /// Subtracted per output channel after scaling.
    public var mean: [Float]
    /// Divides per output channel after the mean.
    public var std: [Float]
    /// Output channel order.
    public var channels: ChannelOrder
    /// Output layout.
    public var layout: Layout

    /// A preprocessing; `mean` and `std` hold one value per output channel, in output channel order.
    public init(resize: Int? = nil, crop: Int? = nil, interpolation: ResamplingFilter = .bilinear, scale: Float = 1,
                mean: [Float] = [0, 0, 0], std: [Float] = [1, 1, 1], channels: ChannelOrder = .rgb, layout: Layout = .nchw) {
        self.resize = resize
        self.crop = crop
        self.interpolation = interpolation
        self.scale = scale
        self.mean = mean
        self.std = std
        self.channels = channels
        self.layout = layout
    }

    /// Checks sizes and statistics before any image is read.
    public func validate() throws {
        if let resize, !(1...Self.maxSide).contains(resize) {
            throw ImageError.invalidPreprocessing(reason: "--resize \(resize) must be 1 to \(Self.maxSide) pixels")
        }
        if let crop, !(1...Self.maxSide).contains(crop) {
            throw ImageError.invalidPreprocessing(reason: "--crop \(crop) must be 1 to \(Self.maxSide) pixels")
        }
        guard mean.count == channels.count, std.count == channels.count else {
            throw ImageError.invalidPreprocessing(reason: "--mean and --std need \(channels.count) value\(channels.count == 1 ? "" : "s") each for --channels \(channels.rawValue) (got \(mean.count) and \(std.count))")
        }
        guard std.allSatisfy({ $0 != 0 && $0.isFinite }), mean.allSatisfy(\.isFinite), scale.isFinite, scale != 0 else {
            throw ImageError.invalidPreprocessing(reason: "--std must be finite and non-zero, --mean and --scale finite (scale non-zero)")
        }
    }

    /// The same preprocessing with other output channels: between RGB and BGR mean and std follow their
    /// colours; to gray, three equal values become one (otherwise they are kept, and `validate` asks for one).
    public func reordered(to order: ChannelOrder) -> Preprocessing {
        guard order != channels else { return self }
        var copy = self
        copy.channels = order
        if order == .gray {
            if Set(mean).count == 1 { copy.mean = [mean[0]] }
            if Set(std).count == 1 { copy.std = [std[0]] }
        } else if channels == .gray {
            copy.mean = Array(repeating: mean[0], count: 3)
            copy.std = Array(repeating: std[0], count: 3)
        } else {
            copy.mean = mean.reversed()
            copy.std = std.reversed()
        }
        return copy
    }

    /// The largest `--resize` and `--crop`, and the most pixels a resized image may have (2^26, 200 MB as
    /// RGB bytes): an elongated image resized by its shorter side grows along the longer one.
    public static let maxSide = 8192
    public static let maxResizedPixels = 1 << 26

    /// The image after resize and crop (8 bits, as PIL returns it); `path` names it in errors.
    public func geometry(_ image: RGBImage, path: String) throws -> RGBImage {
        var image = channels == .gray ? image.gray() : image
        if let resize {
            let (width, height) = Self.shorterSide(image.width, image.height, to: resize)
            guard width <= Self.maxResizedPixels / Swift.max(height, 1) else {
                throw ImageError.tooLarge(path: path, reason: "resizing its \(image.sizeDescription) pixels to a shorter side of \(resize) gives "
                    + "\(width) x \(height), more than \(Self.maxResizedPixels) pixels")
            }
            image = Resampling.resize(image, width: width, height: height, filter: interpolation)
        }
        if let crop {
            guard image.width >= crop, image.height >= crop else {
                throw ImageError.smallerThanCrop(path: path, size: image.sizeDescription, crop: crop)
            }
            image = image.cropped(left: Self.centredOffset(image.width, crop), top: Self.centredOffset(image.height, crop), width: crop, height: crop)
        }
        return image
    }

    /// Writes the normalised values of `image` (from `geometry`) into `target`, in `layout` (C, H, W or
    /// H, W, C) and `channels` order; `target` holds width * height * channels.count values.
    public func normalise(_ image: RGBImage, into target: UnsafeMutableBufferPointer<Float>) {
        let plane = image.width * image.height, count = channels.count
        precondition(target.count == plane * count, "normalise: target holds \(target.count) values for \(plane * count)")
        let order = channels == .bgr ? [2, 1, 0] : [0, 1, 2]
        image.pixels.withUnsafeBufferPointer { source in
            for c in 0..<count {
                let from = order[c], m = mean[c], s = std[c], k = scale
                for p in 0..<plane {
                    let y = (Float(source[3 * p + from]) / k - m) / s
                    target[layout == .nchw ? c * plane + p : count * p + c] = y
                }
            }
        }
    }

    /// Output width and height for a shorter side of `size`: the longer side int(size * long / short)
    /// computed in doubles, as torchvision's `_compute_resized_output_size`.
    public static func shorterSide(_ width: Int, _ height: Int, to size: Int) -> (width: Int, height: Int) {
        if width <= height {
            return (size, Int(Double(size * height) / Double(width)))
        }
        return (Int(Double(size * width) / Double(height)), size)
    }

    /// round((length - crop) / 2) with ties to even, Python's round as torchvision's center_crop uses it.
    public static func centredOffset(_ length: Int, _ crop: Int) -> Int {
        Int((Double(length - crop) / 2).rounded(.toNearestOrEven))
    }
}
