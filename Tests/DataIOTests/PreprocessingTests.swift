import DataIO
import Foundation
import TensorKernels
import XCTest

final class PreprocessingTests: XCTestCase {
    /// Sizes that downscale (antialiased), upscale, change one side only, reach 1 pixel, and shrink the
    /// height much more than the width (Pillow 13 then resamples vertically first).
    static let sizes: [(width: Int, height: Int)] = [(17, 11), (35, 47), (142, 94), (71, 20), (8, 47), (1, 1), (100, 13), (60, 29), (30, 80), (90, 70)]

    /// PIL's resize, all three filters, bit for bit (Pillow 13's pass order; with Pillow 12 or earlier the
    /// vertical-first sizes differ by 1 in some samples).
    func testResizeMatchesPIL() throws {
        var jobs: [[String: Any]] = [], cases: [(String, Int, Int, ResamplingFilter)] = []
        for name in ["rgb.png", "rgb.jpg", "gray.png"] {
            for size in Self.sizes {
                for filter in ResamplingFilter.allCases {
                    jobs.append(["kind": "resize", "file": Fixtures.image(name).path, "width": size.width, "height": size.height, "filter": filter.rawValue])
                    cases.append((name, size.width, size.height, filter))
                }
            }
        }
        let references = try Fixtures.pil(jobs)
        for ((name, width, height, filter), reference) in zip(cases, references) {
            guard case .array(let expected) = reference else { XCTFail("PIL refused: \(reference)"); continue }
            let image = Resampling.resize(try ImageDecoder.decode(contentsOf: Fixtures.image(name)), width: width, height: height, filter: filter)
            let differing = zip(image.floats, expected.data).filter { $0 != $1 }.count
            XCTAssertEqual(differing, 0, "\(name) -> \(width) x \(height) \(filter): \(differing) samples differ from PIL")
        }
    }

    /// 40 seeded random sizes between 1 and 150 pixels per side, bilinear and bicubic, against PIL.
    func testRandomSizesMatchPIL() throws {
        var generator = SeededGenerator(seed: 16)
        let sizes = (0..<40).map { _ in (Int(generator.next() % 150) + 1, Int(generator.next() % 150) + 1) }
        var jobs: [[String: Any]] = [], cases: [(Int, Int, ResamplingFilter)] = []
        for (width, height) in sizes {
            for filter in [ResamplingFilter.bilinear, .bicubic] {
                jobs.append(["kind": "resize", "file": Fixtures.image("rgb.png").path, "width": width, "height": height, "filter": filter.rawValue])
                cases.append((width, height, filter))
            }
        }
        let references = try Fixtures.pil(jobs)
        let image = try ImageDecoder.decode(contentsOf: Fixtures.image("rgb.png"))
        for ((width, height, filter), reference) in zip(cases, references) {
            guard case .array(let expected) = reference else { XCTFail("PIL refused: \(reference)"); continue }
            let ours = Resampling.resize(image, width: width, height: height, filter: filter)
            XCTAssertEqual(ours.floats, expected.data, "71 x 47 -> \(width) x \(height) \(filter)")
        }
    }

    /// Each preset (and explicit variations) against PIL + numpy as torchvision / the Lite0 script do it.
    func testPresetsMatchPIL() throws {
        var settings: [(String, Preprocessing)] = Preprocessing.presetNames.map { ($0, try! Preprocessing.preset(named: $0)) }
        // Small sizes so the committed images (19-71 pixels) are downscaled and upscaled by the presets' rules.
        settings = settings.map { name, p in
            var q = p
            if q.resize != nil { q.resize = 40; q.crop = 32 }
            return (name, q)
        }
        var nhwc = Preprocessing.torchvision
        nhwc.resize = 24; nhwc.crop = 20; nhwc.layout = .nhwc; nhwc.interpolation = .nearest
        settings.append(("torchvision nhwc nearest", nhwc))
        settings.append(("torchvision as bgr", Preprocessing.torchvision.reordered(to: .bgr)))
        var gray = Preprocessing(resize: 30, crop: 24, interpolation: .bicubic, scale: 255, mean: [0.2860], std: [0.3530], channels: .gray)
        settings.append(("gray (Fashion-MNIST values)", gray))
        gray.layout = .nhwc; gray.interpolation = .bilinear
        settings.append(("gray nhwc bilinear", gray))
        var jobs: [[String: Any]] = [], cases: [(String, String, Preprocessing)] = []
        for name in ["rgb.png", "rgb.jpg", "gray.jpg", "progressive.jpg", "palette.png", "rgba.png"] {
            for (label, p) in settings {
                jobs.append(["kind": "preset", "file": Fixtures.image(name).path, "resize": p.resize as Any? ?? NSNull(), "crop": p.crop as Any? ?? NSNull(),
                             "filter": p.interpolation.rawValue, "scale": Double(p.scale), "mean": p.mean.map(Double.init), "std": p.std.map(Double.init),
                             "channels": p.channels.rawValue, "layout": p.layout.rawValue])
                cases.append((name, label, p))
            }
        }
        let references = try Fixtures.pil(jobs)
        for ((name, label, p), reference) in zip(cases, references) {
            guard case .array(let expected) = reference else { XCTFail("PIL refused: \(reference)"); continue }
            let image = try p.geometry(ImageDecoder.decode(contentsOf: Fixtures.image(name)), path: name)
            var values = [Float](repeating: .nan, count: image.width * image.height * p.channels.count)
            values.withUnsafeMutableBufferPointer { p.normalise(image, into: $0) }
            XCTAssertEqual(expected.data.count, values.count, "\(name) \(label)")
            let worst = zip(values, expected.data).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(worst, 0, "\(name) \(label): largest difference \(worst)")
        }
    }

    func testPresetDefinitions() throws {
        XCTAssertEqual(Preprocessing.torchvision.resize, 256); XCTAssertEqual(Preprocessing.torchvision.crop, 224)
        XCTAssertEqual(Preprocessing.efficientNetLite.interpolation, .bicubic)
        XCTAssertEqual(Preprocessing.inception.crop, 299)
        XCTAssertEqual(Preprocessing.caffe.channels, .bgr)
        XCTAssertEqual(Preprocessing.caffe.reordered(to: .rgb).mean, [123.68, 116.779, 103.939])
        XCTAssertThrowsError(try Preprocessing.preset(named: "imagenet")) { error in
            XCTAssertTrue("\(error)".contains("imagenet") && "\(error)".contains("torchvision"), "\(error)")
        }
    }

    /// Sizes a flag or an elongated image can reach are bounded before any allocation.
    func testResizeAndCropAreBounded() throws {
        var p = Preprocessing.raw
        p.resize = 100_000_000
        XCTAssertThrowsError(try p.validate()) { XCTAssertTrue("\($0)".contains("must be 1 to 8192"), "\($0)") }
        p.resize = nil
        p.crop = 0
        XCTAssertThrowsError(try p.validate())
        // A 1 x 4000 strip resized to a shorter side of 8192 would be 8192 x 32,768,000 pixels.
        p.crop = nil
        p.resize = 8192
        let strip = RGBImage(width: 1, height: 4000, pixels: [UInt8](repeating: 7, count: 3 * 4000))
        XCTAssertThrowsError(try p.geometry(strip, path: "strip.png")) { error in
            guard case ImageError.tooLarge(path: "strip.png", _) = error else { return XCTFail("\(error)") }
        }
    }

    /// torchvision's size rules: longer side truncated, crop offsets rounded half to even.
    func testShorterSideAndCentreCropRounding() {
        XCTAssertEqual(Preprocessing.shorterSide(500, 375, to: 256).width, 341)   // 256 * 500 / 375 = 341.33
        XCTAssertEqual(Preprocessing.shorterSide(375, 500, to: 256).height, 341)
        XCTAssertEqual(Preprocessing.centredOffset(225, 224), 0)                  // round(0.5) = 0
        XCTAssertEqual(Preprocessing.centredOffset(227, 224), 2)                  // round(1.5) = 2
        XCTAssertEqual(Preprocessing.centredOffset(341, 224), 58)                 // round(58.5) = 58
    }
}
