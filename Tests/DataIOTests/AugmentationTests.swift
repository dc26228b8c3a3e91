@testable import DataIO
import Foundation
import TensorKernels
import XCTest

final class AugmentationTests: XCTestCase {
    /// The same seed gives the same crops; another seed other crops; each image's own sample stays first.
    func testSeededRandomResizedCrops() throws {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try Fixtures.copy([("rgb.png", "a.png"), ("rgb.jpg", "b.jpg")], into: folder)
        let images = try ImageFolder(contentsOf: folder)
        var p = Preprocessing.torchvision
        p.resize = 40; p.crop = 32
        func augmented(_ seed: UInt64) throws -> ImageBatch {
            try images.load(p, augmentation: Augmentation(crop: RandomResizedCrop(size: 32, interpolation: .bilinear), copies: 3, seed: seed))
        }
        let first = try augmented(7), again = try augmented(7), other = try augmented(8)
        XCTAssertEqual(first.tensor.shape, [8, 3, 32, 32])
        XCTAssertEqual(first.files, ["a.png", "a.png#augmented-1", "a.png#augmented-2", "a.png#augmented-3",
                                     "b.jpg", "b.jpg#augmented-1", "b.jpg#augmented-2", "b.jpg#augmented-3"])
        XCTAssertEqual(first.tensor, again.tensor)
        XCTAssertNotEqual(first.tensor, other.tensor)
        let plain = try images.load(p)
        let plane = 3 * 32 * 32
        XCTAssertEqual(Array(first.tensor.data[0..<plane]), Array(plain.tensor.data[0..<plane]), "the image's own sample comes first, unchanged")
        XCTAssertEqual(Array(first.tensor.data[(4 * plane)..<(5 * plane)]), Array(plain.tensor.data[plane..<(2 * plane)]))
        XCTAssertThrowsError(try images.load(p, augmentation: Augmentation(crop: RandomResizedCrop(size: 24, interpolation: .bilinear), copies: 1, seed: 0)))
    }

    /// The crop parameters stay inside the image and within torchvision's ranges of area and aspect.
    func testCropRegionsFollowTorchvisionRanges() {
        let crop = RandomResizedCrop(size: 8, interpolation: .bilinear)
        var generator = SeededGenerator(seed: 1)
        for (width, height) in [(71, 47), (10, 300), (300, 10), (1, 1)] {
            for _ in 0..<200 {
                var g = generator
                let (left, top, w, h) = crop.region(width: width, height: height, using: &g)
                generator = g
                XCTAssertTrue(left >= 0 && top >= 0 && w > 0 && h > 0 && left + w <= width && top + h <= height, "\(width)x\(height): \(left) \(top) \(w) \(h)")
            }
        }
        let image = RGBImage(width: 3, height: 1, pixels: [1, 2, 3, 4, 5, 6, 7, 8, 9])
        XCTAssertEqual(image.flippedHorizontally().pixels, [7, 8, 9, 4, 5, 6, 1, 2, 3])
    }
}
