/// Extra calibration samples: `copies` random resized crops (with flips) of every image, after its own sample.
public struct Augmentation: Sendable {
    /// The crop and flip.
    public var crop: RandomResizedCrop
    /// Augmented samples per image.
    public var copies: Int
    /// Seed of every draw; image i draws from SplitMix64(seed + i * 2^64 / golden ratio), i its index among
    /// all the folder's files, so the samples do not depend on threads or on skipped images.
    public var seed: UInt64

    /// `copies` augmented samples per image from `seed`.
    public init(crop: RandomResizedCrop, copies: Int, seed: UInt64) {
        self.crop = crop
        self.copies = copies
        self.seed = seed
    }
}
