import DataIO
import Foundation
import XCTest

final class ImageFolderTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws { folder = try Fixtures.temporaryFolder() }
    override func tearDownWithError() throws { if let folder { try? FileManager.default.removeItem(at: folder) } }

    /// Class folders in sorted order give torchvision ImageFolder's indices; rows follow sorted paths.
    func testClassLayoutAndSortedOrder() throws {
        try Fixtures.copy([("rgb.png", "zebra/b.png"), ("rgb.jpg", "zebra/a.jpg"), ("gray.png", "ant/x.png"),
                           ("rgba.png", "ant-b/y.png"), ("palette.png", "ant/sub/z.png")], into: folder)
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("empty-class"), withIntermediateDirectories: true)
        try Data("notes".utf8).write(to: folder.appendingPathComponent("ant/README.txt"))
        let images = try ImageFolder(contentsOf: folder)
        // Component by component: "ant" < "ant-b" although "ant-b/..." < "ant/..." as whole strings.
        XCTAssertEqual(images.files, ["ant/sub/z.png", "ant/x.png", "ant-b/y.png", "zebra/a.jpg", "zebra/b.png"])
        XCTAssertEqual(images.classes, ["ant", "ant-b", "empty-class", "zebra"])
        XCTAssertEqual(images.ignored, ["ant/README.txt"])
        let batch = try images.load(Preprocessing(resize: 16, crop: 12))
        XCTAssertEqual(batch.tensor.shape, [5, 3, 12, 12])
        XCTAssertEqual(batch.classLabels, [0, 0, 1, 3, 3])
        XCTAssertEqual(batch.files, images.files)
    }

    /// Progress is told after each group of 64 images, ending at the total; the images and their order
    /// do not depend on the grouping.
    func testLoadReportsProgressInGroups() throws {
        let names = (0..<70).map { String(format: "img%02d.png", $0) }
        try Fixtures.copy(names.map { ("rgb.png", $0) }, into: folder)
        var reports: [[Int]] = []
        let batch = try ImageFolder(contentsOf: folder).load(Preprocessing(resize: 8, crop: 8)) { reports.append([$0, $1]) }
        XCTAssertEqual(reports, [[64, 70], [70, 70]])
        XCTAssertEqual(batch.files, names)
        XCTAssertEqual(batch.tensor.shape, [70, 3, 8, 8])
    }

    func testLabelFileByPathAndByName() throws {
        try Fixtures.copy([("rgb.png", "one.png"), ("rgb.jpg", "sub/two.jpg")], into: folder)
        let labels = folder.appendingPathComponent("labels.csv")
        try Data("file,label\n# a comment\none.png,7\nsub/two.jpg, 3\n".utf8).write(to: labels)
        let images = try ImageFolder(contentsOf: folder.appendingPathComponent("."))
        XCTAssertNil(images.classes, "an image at the top level: no class layout")
        XCTAssertEqual(try LabelFile(contentsOf: labels).labels(for: images.files, allFiles: images.files), [7, 3])
        try Data("one.png 7\ntwo.jpg 3\n".utf8).write(to: labels)
        XCTAssertEqual(try LabelFile(contentsOf: labels).labels(for: images.files, allFiles: images.files), [7, 3])
        try Data("one.png 7\ntwo.jpg 3\nthree.png 1\n".utf8).write(to: labels)
        XCTAssertThrowsError(try LabelFile(contentsOf: labels).labels(for: images.files, allFiles: images.files)) { error in
            XCTAssertEqual(error as? ImageError, .labelForMissingImage(labels: labels.path, name: "three.png"))
        }
        try Data("one.png 7\n".utf8).write(to: labels)
        XCTAssertThrowsError(try LabelFile(contentsOf: labels).labels(for: images.files, allFiles: images.files)) { error in
            XCTAssertEqual(error as? ImageError, .missingLabel(labels: labels.path, name: "sub/two.jpg"))
        }
        try Fixtures.copy([("gray.png", "other/two.jpg")], into: folder)
        let more = try ImageFolder(contentsOf: folder)
        try Data("# bare names\ntwo.jpg 7\n".utf8).write(to: labels)
        XCTAssertThrowsError(try LabelFile(contentsOf: labels).labels(for: more.files, allFiles: more.files)) { error in
            XCTAssertTrue("\(error)".contains("line 2") && "\(error)".contains("names 2 images"), "\(error)")
        }
        try Data("one.png,seven\n two.jpg,x\n".utf8).write(to: labels)
        XCTAssertThrowsError(try LabelFile(contentsOf: labels)) { error in
            XCTAssertTrue("\(error)".contains("line 2"), "\(error)")
        }
    }

    func testBadInputIsANamedError() throws {
        XCTAssertThrowsError(try ImageFolder(contentsOf: folder)) { error in
            XCTAssertEqual(error as? ImageError, .emptyFolder(path: self.folder.path))
        }
        try Fixtures.copy([("rgb.png", "a.png"), ("rgb.jpg", "b.jpg")], into: folder)
        XCTAssertThrowsError(try ImageFolder(contentsOf: folder).load(.raw)) { error in
            guard case .mixedSizes(let path, _, _, _) = error as? ImageError else { return XCTFail("\(error)") }
            XCTAssertTrue(path.hasSuffix("b.jpg"), path)
            XCTAssertTrue("\(error)".contains("--resize"), "\(error)")
        }
        XCTAssertThrowsError(try ImageFolder(contentsOf: folder).load(Preprocessing(crop: 60))) { error in
            guard case .smallerThanCrop = error as? ImageError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try ImageFolder(contentsOf: folder.appendingPathComponent("missing")))
    }

    /// A truncated JPEG and a non-image stop the load naming the file, or with `skipBadImages` are left out
    /// and listed; the remaining rows keep their order.
    func testSkipBadImages() throws {
        try Fixtures.copy([("rgb.png", "a.png"), ("truncated.jpg", "b.jpg"), ("rgb.jpg", "c.jpg"),
                           ("not-an-image.jpg", "d.jpg"), ("gray16.png", "e.png")], into: folder)
        let images = try ImageFolder(contentsOf: folder)
        XCTAssertThrowsError(try images.load(.torchvision)) { error in
            XCTAssertTrue("\(error)".contains("b.jpg") && "\(error)".contains("--skip-bad-images"), "\(error)")
        }
        let batch = try images.load(.torchvision, skipBadImages: true)
        XCTAssertEqual(batch.files, ["a.png", "c.jpg"])
        XCTAssertEqual(batch.skipped.map(\.file), ["b.jpg", "d.jpg", "e.png"])
        XCTAssertEqual(batch.tensor.shape, [2, 3, 224, 224])
    }

    func testOneImageFileAndNHWC() throws {
        var p = Preprocessing.efficientNetLite
        p.layout = .nhwc
        let batch = try ImageFolder(contentsOf: Fixtures.image("rgb.jpg")).load(p)
        XCTAssertEqual(batch.tensor.shape, [1, 224, 224, 3])
        XCTAssertEqual(batch.files, ["rgb.jpg"])
        XCTAssertNil(batch.classLabels)
    }
}
