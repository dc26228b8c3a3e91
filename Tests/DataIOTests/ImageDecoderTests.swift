import DataIO
import Foundation
import TensorKernels
import XCTest

final class ImageDecoderTests: XCTestCase {
    /// Every decodable test image gives PIL's `convert("RGB")` pixels exactly: PNG by definition, JPEG
    /// because both use libjpeg-turbo's accurate integer IDCT and fancy upsampling.
    func testDecodingMatchesPIL() throws {
        let references = try Fixtures.pil(Fixtures.decodable.map { ["kind": "decode", "file": Fixtures.image($0).path] })
        for (name, reference) in zip(Fixtures.decodable, references) {
            guard case .array(let expected) = reference else { XCTFail("PIL refused \(name): \(reference)"); continue }
            let image = try ImageDecoder.decode(contentsOf: Fixtures.image(name))
            XCTAssertEqual(expected.shape, [image.height, image.width, 3], name)
            let differing = zip(image.floats, expected.data).filter { $0 != $1 }.count
            XCTAssertEqual(differing, 0, "\(name): \(differing) of \(expected.data.count) samples differ from PIL")
        }
    }

    func testGrayscaleIsReplicatedAndAlphaDropped() throws {
        let gray = try ImageDecoder.decode(contentsOf: Fixtures.image("gray.png"))
        for p in stride(from: 0, to: gray.pixels.count, by: 3) {
            XCTAssertEqual(gray.pixels[p], gray.pixels[p + 1]); XCTAssertEqual(gray.pixels[p], gray.pixels[p + 2])
        }
        let fourBit = try ImageDecoder.decode(contentsOf: Fixtures.image("gray4.png"))
        XCTAssertTrue(fourBit.pixels.allSatisfy { $0 % 17 == 0 }, "4-bit gray is scaled by 17 to 0...255")
        let rgba = try ImageDecoder.decode(contentsOf: Fixtures.image("rgba.png"))
        XCTAssertEqual(rgba.pixels.count, 30 * 21 * 3)
    }

    func testBadFilesAreNamedErrorsNotCrashes() {
        let cases: [(String, (ImageError) -> Bool)] = [
            ("truncated.jpg", { if case .damaged = $0 { return true } else { return false } }),
            ("not-an-image.jpg", { if case .notAnImage = $0 { return true } else { return false } }),
            ("gray16.png", { if case .unsupported(_, let kind) = $0 { return kind.contains("16-bit grayscale") } else { return false } }),
        ]
        for (name, expected) in cases {
            XCTAssertThrowsError(try ImageDecoder.decode(contentsOf: Fixtures.image(name)), name) { error in
                guard let error = error as? ImageError else { return XCTFail("\(name): \(error)") }
                XCTAssertTrue(expected(error), "\(name): \(error)")
                XCTAssertTrue(error.description.contains(name), "the message names the file: \(error)")
            }
        }
    }

    /// Other image formats are named in the refusal.
    func testOtherFormatsAreNamed() {
        for (bytes, kind) in [("BM\u{0}\u{0}", "BMP"), ("GIF89a", "GIF"), ("RIFF\u{0}\u{0}\u{0}\u{0}WEBPVP8 ", "WebP"), ("P6\n4 4\n255\n", "PNM")] {
            XCTAssertThrowsError(try ImageDecoder.decode(Data(bytes.utf8), path: "x")) { error in
                guard case .unsupported(_, let text) = error as? ImageError else { return XCTFail("\(error)") }
                XCTAssertTrue(text.contains(kind), text)
            }
        }
    }

    /// Cut at every length, a JPEG and a PNG give an error (or, for a cut inside the final marker, an
    /// image), never a signal.
    func testEveryTruncationIsAnError() throws {
        for name in ["rgb.jpg", "progressive.jpg", "rgb.png"] {
            let bytes = try Data(contentsOf: Fixtures.image(name))
            var failures = 0
            for length in stride(from: 0, to: bytes.count, by: 7) {
                do { _ = try ImageDecoder.decode(bytes.prefix(length), path: name) } catch { failures += 1 }
            }
            XCTAssertGreaterThan(failures, bytes.count / 7 - 2, name)
        }
    }

    /// Seeded random byte changes (1-8 bytes past the signature) give an image or an error, never a signal.
    func testCorruptedBytesNeverCrash() throws {
        var generator = SeededGenerator(seed: 16)
        for name in ["rgb.jpg", "progressive.jpg", "cmyk.jpg", "rgb.png", "palette.png", "rgb16.png"] {
            let original = try Data(contentsOf: Fixtures.image(name))
            var failures = 0
            for _ in 0..<150 {
                var bytes = [UInt8](original)
                for _ in 0..<(1 + Int(generator.next() % 8)) {
                    bytes[8 + Int(generator.next() % UInt64(bytes.count - 8))] = UInt8(truncatingIfNeeded: generator.next())
                }
                do { _ = try ImageDecoder.decode(Data(bytes), path: name) } catch { failures += 1 }
            }
            XCTAssertGreaterThan(failures, 0, "\(name): some corruptions must be detected")
        }
    }
}
