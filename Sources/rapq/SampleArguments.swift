import ArgumentParser
import Foundation
import RAPQ

extension ResamplingFilter: ExpressibleByArgument {}
extension Preprocessing.ChannelOrder: ExpressibleByArgument {}
extension Preprocessing.Layout: ExpressibleByArgument {}

/// How images (a folder of JPEG/PNG files, or one image) become model inputs; not used for `.npy` data.
struct ImageOptions: ParsableArguments {
    @Option(help: "Preprocessing of images: \(Preprocessing.presetNames.joined(separator: ", ")) (README, Formats: Images). Required for images unless explicit flags below describe it (they start from 'raw').")
    var preset: String?

    @Option(help: "Resize images so that the shorter side is N pixels (overrides the preset).")
    var resize: Int?

    @Option(help: "Centre crop N x N after the resize (overrides the preset).")
    var crop: Int?

    @Option(help: "Resize interpolation: nearest, bilinear or bicubic, as PIL's (overrides the preset).")
    var interpolation: ResamplingFilter?

    @Option(help: "Per-channel mean a,b,c in the output channel order (one value with --channels gray), subtracted after --scale (overrides the preset).")
    var mean: String?

    @Option(help: "Per-channel std a,b,c in the output channel order (one value with --channels gray), dividing after the mean (overrides the preset).")
    var std: String?

    @Option(help: "Divide the 0-255 pixel values by this first (255 gives 0-1; overrides the preset).")
    var scale: Float?

    @Option(help: "Channels of the model input: rgb, bgr (the preset's mean and std follow their colours) or gray (one channel, PIL's convert('L') before the resize).")
    var channels: Preprocessing.ChannelOrder?

    @Option(help: "Layout of the model input: nchw or nhwc.")
    var layout: Preprocessing.Layout?

    @Flag(help: "Leave out images that cannot be read (not JPEG/PNG, damaged, truncated, refused kinds) instead of stopping; they are counted and listed.")
    var skipBadImages = false

    /// Whether any explicit preprocessing flag is given.
    var hasExplicitFlags: Bool {
        resize != nil || crop != nil || interpolation != nil || mean != nil || std != nil || scale != nil || channels != nil || layout != nil
    }

    /// The preset with the explicit flags applied over it.
    func preprocessing() throws -> Preprocessing {
        guard preset != nil || hasExplicitFlags else {
            throw ValidationError("images need a preprocessing: give --preset \(Preprocessing.presetNames.joined(separator: "|")), or explicit flags (--resize, --crop, --mean, --std, --scale, ...)")
        }
        var p = try preset.map { try Preprocessing.preset(named: $0) } ?? .raw
        if let channels { p = p.reordered(to: channels) }
        if let resize { p.resize = resize }
        if let crop { p.crop = crop }
        if let interpolation { p.interpolation = interpolation }
        if let scale { p.scale = scale }
        if let mean { p.mean = try Self.values(mean, "--mean") }
        if let std { p.std = try Self.values(std, "--std") }
        if let layout { p.layout = layout }
        try p.validate()
        return p
    }

    /// One number, or three separated by commas.
    static func values(_ text: String, _ flag: String) throws -> [Float] {
        let values = text.split(separator: ",").compactMap { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard values.count == text.split(separator: ",").count, values.count == 3 || values.count == 1 else {
            throw ValidationError("\(flag) '\(text)' must be three numbers separated by commas, e.g. 0.485,0.456,0.406 (one number with --channels gray)")
        }
        return values
    }
}

/// Samples as a command reads them: from a `.npy` array, or decoded and preprocessed from images.
struct Samples {
    /// Batch first.
    var tensor: Tensor
    /// For images: the file of each row (relative to the folder), and every image the folder holds.
    var files: [String]?
    var allFiles: [String]?
    /// Class indices from the folder's class layout (ImageNet style), one per row.
    var classLabels: [Int64]?

    /// Reads `path`: a `.npy` array as it is, otherwise a folder of images (recursively, in sorted path
    /// order) or one image file, preprocessed by `options`, each image followed by `augmentedCopies` random
    /// resized crops (with flips) drawn from `seed`. Prints what was read.
    init(path: String, options: ImageOptions, augmentedCopies: Int = 0, seed: UInt64 = 0) throws {
        let url = URL(fileURLWithPath: path)
        if url.pathExtension.lowercased() == "npy" {
            guard augmentedCopies == 0 else { throw ValidationError("--augment crops images; \(path) is a .npy array, so give a folder of images or drop --augment") }
            if options.preset != nil || options.hasExplicitFlags {
                FileHandle.standardError.write(Data("note: \(path) is a .npy array and is used as it is; --preset and the image flags apply to images only\n".utf8))
            }
            tensor = try NumpyFile.readTensor(contentsOf: url)
            return
        }
        let folder = try ImageFolder(contentsOf: url)
        let preprocessing = try options.preprocessing()
        var augmentation: Augmentation?
        if augmentedCopies > 0 {
            guard let crop = preprocessing.crop else { throw ValidationError("--augment needs a crop size: a preset with one, or --crop") }
            augmentation = Augmentation(crop: RandomResizedCrop(size: crop, interpolation: preprocessing.interpolation), copies: augmentedCopies, seed: seed)
        }
        let batch = try folder.load(preprocessing, skipBadImages: options.skipBadImages, augmentation: augmentation,
                                    progress: ProgressLine("decoding images", unit: "images").update)
        tensor = batch.tensor
        files = batch.files
        allFiles = folder.files
        classLabels = batch.classLabels
        let shape = batch.tensor.shape.map(String.init).joined(separator: "x")
        var line = "read \(folder.files.count - batch.skipped.count) images from \(path) (\(options.preset ?? "explicit flags"): \(shape))"
        if augmentedCopies > 0 { line += ", \(augmentedCopies) augmented crops each" }
        if !batch.skipped.isEmpty { line += ", skipped \(batch.skipped.count) unreadable" }
        if !folder.ignored.isEmpty { line += ", ignored \(folder.ignored.count) files that are not images" }
        print(line)
        for (file, reason) in batch.skipped.prefix(20) { print("  skipped \(file): \(reason)") }
        if batch.skipped.count > 20 { print("  ... and \(batch.skipped.count - 20) more") }
    }

    /// The labels of these samples: from a `.npy` (one per row), a text/CSV file naming images, or, without
    /// a file, the class folders.
    func labels(from path: String?) throws -> [Int64]? {
        guard let path else {
            if let classLabels, classLabels.count == tensor.shape[0] { print("labels: from the class folders") }
            return classLabels
        }
        let url = URL(fileURLWithPath: path)
        if url.pathExtension.lowercased() == "npy" {
            let (shape, values) = try NumpyFile.readIntegers(contentsOf: url)
            guard shape.first == tensor.shape.first, values.count == tensor.shape[0] else {
                throw CommandFailure("--labels has \(values.count) entries (shape \(shape)) but --data has \(tensor.shape.first ?? 0) samples")
            }
            return values
        }
        guard let files, let allFiles else {
            throw ValidationError("--labels \(path) names images, but --data is a .npy array; give the labels as a .npy of class indices")
        }
        return try LabelFile(contentsOf: url).labels(for: files, allFiles: allFiles)
    }
}
