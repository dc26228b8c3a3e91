import Foundation
import TensorKernels

extension ImageFolder {
    /// Decodes every image, resizes and crops it (8 bits, as PIL), and normalises it into one tensor.
    ///
    /// An unreadable image (not JPEG or PNG, damaged, truncated, refused, too large) stops the load with an
    /// error naming it, or with `skipBadImages` is left out and listed in `skipped`. Every image must
    /// reach the same size after the preprocessing's resize and crop. Images decode in parallel; errors are
    /// reported for the first bad file in sorted order, so the outcome does not depend on threads.
    ///
    /// With `augmentation`, each image's row is followed by `copies` rows of random resized crops (named
    /// "FILE#augmented-k" in `files`); the crops have the preprocessing's crop size. `progress` is told the
    /// images decoded and the total after each group of images.
    public func load(_ preprocessing: Preprocessing, skipBadImages: Bool = false, augmentation: Augmentation? = nil,
                     progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> ImageBatch {
        try preprocessing.validate()
        if let augmentation, augmentation.crop.size != preprocessing.crop {
            throw ImageError.invalidPreprocessing(reason: "augmented crops of \(augmentation.crop.size) pixels need a centre crop of the same size (--crop)")
        }
        var results = [Result<[RGBImage], Error>?](repeating: nil, count: files.count)
        // Groups of images decode in parallel, so that progress can be told between groups.
        let group = 64
        for start in stride(from: 0, to: files.count, by: group) {
            let end = Swift.min(files.count, start + group)
            results.withUnsafeMutableBufferPointer { slots in
                Parallel.forEach(end - start) { k in
                    let i = start + k
                    slots[i] = Result {
                        let path = url(of: files[i]).path
                        let decoded = try ImageDecoder.decode(contentsOf: url(of: files[i]))
                        var images = [try preprocessing.geometry(decoded, path: path)]
                        if let augmentation {
                            var generator = SeededGenerator(seed: augmentation.seed &+ UInt64(i) &* 0x9E37_79B9_7F4A_7C15)
                            let source = preprocessing.channels == .gray ? decoded.gray() : decoded
                            for _ in 0..<augmentation.copies { images.append(augmentation.crop.apply(to: source, using: &generator)) }
                        }
                        return images
                    }
                }
            }
            progress?(end, files.count)
        }
        var kept: [(file: String, image: RGBImage)] = [], skipped: [(file: String, reason: String)] = []
        for (file, result) in zip(files, results) {
            switch result! {
            case .success(let images):
                for (k, image) in images.enumerated() { kept.append((k == 0 ? file : "\(file)#augmented-\(k)", image)) }
            case .failure(let error):
                guard skipBadImages, Self.isUnreadable(error) else { throw error }
                skipped.append((file, "\(error)"))
            }
        }
        guard let first = kept.first else { throw ImageError.noReadableImages(path: root.path, skipped: skipped.count) }
        let width = first.image.width, height = first.image.height
        if let odd = kept.first(where: { $0.image.width != width || $0.image.height != height }) {
            throw ImageError.mixedSizes(path: url(of: odd.file).path, size: odd.image.sizeDescription,
                                        first: url(of: first.file).path, firstSize: first.image.sizeDescription)
        }
        let channels = preprocessing.channels.count, plane = width * height * channels
        var data = [Float](repeating: 0, count: kept.count * plane)
        data.withUnsafeMutableBufferPointer { target in
            Parallel.forEach(kept.count) { i in
                preprocessing.normalise(kept[i].image, into: UnsafeMutableBufferPointer(rebasing: target[(i * plane)..<((i + 1) * plane)]))
            }
        }
        let shape = preprocessing.layout == .nchw ? [kept.count, channels, height, width] : [kept.count, height, width, channels]
        let labels = classes.map { _ in kept.map { Int64(classIndex(of: $0.file.components(separatedBy: "#augmented-")[0]) ?? 0) } }
        return ImageBatch(tensor: Tensor(shape: shape, data: data), files: kept.map(\.file), classLabels: labels, skipped: skipped)
    }

    /// Errors of reading one image, which `skipBadImages` passes over.
    static func isUnreadable(_ error: Error) -> Bool {
        switch error {
        case ImageError.notAnImage, ImageError.damaged, ImageError.unsupported, ImageError.tooLarge, DataError.unreadable: return true
        default: return false
        }
    }
}
