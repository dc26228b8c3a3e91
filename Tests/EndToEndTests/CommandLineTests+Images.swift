import Foundation
import RAPQ
import XCTest

/// The commands on image folders: the same rows as the library's preprocessing, file names next to `run`'s
/// output, labels from class folders, and named errors for bad images.
extension CommandLineTests {
    static var images: URL { root.appendingPathComponent("Tests/DataIOTests/Resources/images") }
    static var slice: String { root.appendingPathComponent("Tests/GraphTests/Resources/lite0-slice.onnx").path }

    /// A class-layout folder of three good images (two classes) in the scratch folder.
    func imageFolder() throws -> URL {
        let folder = scratch.appendingPathComponent("photos")
        for (source, target) in [("rgb.jpg", "cat/1.jpg"), ("gray.png", "cat/2.png"), ("rgb.png", "dog/3.png")] {
            let url = folder.appendingPathComponent(target)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: Self.images.appendingPathComponent(source), to: url)
        }
        return folder
    }

    func testRunOnImagesWritesOutputsAndNames() throws {
        let folder = try imageFolder()
        let out = scratch.appendingPathComponent("y.npy")
        let (status, output) = try rapq(["run", Self.slice, "-i", folder.path, "--preset", "efficientnet-lite", "-o", out.path])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("read 3 images"), output)
        let names = try String(contentsOf: scratch.appendingPathComponent("y.txt"), encoding: .utf8)
        XCTAssertEqual(names, "cat/1.jpg\ncat/2.png\ndog/3.png\n")
        // The same rows as the library's preprocessing written to a .npy and run from there.
        let x = try ImageFolder(contentsOf: folder).load(.efficientNetLite).tensor
        let npy = try writeNpy(x, "x.npy")
        let reference = scratch.appendingPathComponent("reference.npy")
        XCTAssertEqual(try rapq(["run", Self.slice, "-i", npy, "-o", reference.path]).status, 0)
        XCTAssertEqual(try NumpyFile.readTensor(contentsOf: out), try NumpyFile.readTensor(contentsOf: reference))
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.appendingPathComponent("reference.txt").path), "no names for a .npy input")
    }

    func testBadImageInputIsANamedError() throws {
        let folder = try imageFolder()
        let out = scratch.appendingPathComponent("y.npy").path
        try assertFails(["run", Self.slice, "-i", folder.path, "-o", out], saying: "images need a preprocessing", noFile: out)
        try assertFails(["run", Self.slice, "-i", folder.path, "--preset", "imagenet", "-o", out], saying: "unknown preprocessing preset 'imagenet'", noFile: out)
        try assertFails(["run", Self.slice, "-i", folder.path, "--preset", "raw", "-o", out], saying: "images of different sizes need", noFile: out)
        try assertFails(["run", Self.slice, "-i", folder.path, "--preset", "torchvision", "--mean", "1,2", "-o", out], saying: "--mean '1,2' must be three numbers", noFile: out)
        let empty = scratch.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        try assertFails(["run", Self.slice, "-i", empty.path, "--preset", "torchvision", "-o", out], saying: "holds no .jpg, .jpeg or .png file", noFile: out)
        try FileManager.default.copyItem(at: Self.images.appendingPathComponent("truncated.jpg"), to: folder.appendingPathComponent("dog/4.jpg"))
        try assertFails(["run", Self.slice, "-i", folder.path, "--preset", "torchvision", "-o", out], saying: "dog/4.jpg' is a damaged image", noFile: out)
        let (status, output) = try rapq(["run", Self.slice, "-i", folder.path, "--preset", "torchvision", "--skip-bad-images", "-o", out])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("read 3 images") && output.contains("skipped 1 unreadable") && output.contains("skipped dog/4.jpg"), output)
    }

    /// eval takes labels from the class folders, or from a file naming the images.
    func testEvalLabelsFromFoldersAndFiles() throws {
        let folder = try imageFolder()
        var (status, output) = try rapq(["eval", Self.slice, "--data", folder.path, "--preset", "torchvision", "--reference", Self.slice])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("labels: from the class folders"), output)
        XCTAssertTrue(output.contains("top-1"), output)
        let labels = scratch.appendingPathComponent("labels.txt")
        try Data("1.jpg 0\n2.png 1\n3.png 2\n".utf8).write(to: labels)
        (status, output) = try rapq(["eval", Self.slice, "--data", folder.path, "--preset", "torchvision", "--labels", labels.path])
        XCTAssertEqual(status, 0, output)
        try Data("1.jpg 0\n2.png 1\n5.png 2\n".utf8).write(to: labels)
        try assertFails(["eval", Self.slice, "--data", folder.path, "--preset", "torchvision", "--labels", labels.path], saying: "gives a label to '5.png', which is not among the images")
    }

    /// quantize calibrates on images, with seeded augmented crops added by --augment.
    func testQuantizeOnImagesWithAugmentation() throws {
        let folder = try imageFolder()
        let out = scratch.appendingPathComponent("slice.rapq").path
        let (status, output) = try rapq(["quantize", Self.slice, "--calib", folder.path, "--preset", "efficientnet-lite", "--augment", "2",
                                         "--method", "pot-mse", "--wbits", "8", "--abits", "8", "-o", out])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("read 3 images") && output.contains("2 augmented crops each") && output.contains("9x3x224x224"), output)
        let npyOut = scratch.appendingPathComponent("other.rapq").path
        try assertFails(["quantize", Self.slice, "--calib", try writeNpy(Tensor(shape: [1, 3, 224, 224]), "x.npy"), "--augment", "1", "-o", npyOut],
                        saying: "--augment crops images", noFile: npyOut)
    }

    /// Gray PNGs of Fashion-MNIST test images in class folders give the bundled .npy's rows bit for bit
    /// with --channels gray and the models' normalisation, and eval labels them from the folders.
    func testGrayImagesReproduceTheFashionMNISTArrays() throws {
        let folder = Self.root.appendingPathComponent("Tests/DataIOTests/Resources/fmnist")
        let normalisation = Preprocessing(scale: 255, mean: [0.2860], std: [0.3530], channels: .gray)
        let batch = try ImageFolder(contentsOf: folder).load(normalisation)
        let rows = try NumpyFile.readTensor(contentsOf: URL(fileURLWithPath: model("fmnist-test-1k.npy")))
        let labels = try NumpyFile.readIntegers(contentsOf: URL(fileURLWithPath: model("fmnist-test-1k-labels.npy"))).values
        XCTAssertEqual(batch.tensor.shape, [20, 1, 28, 28])
        for (k, file) in batch.files.enumerated() {
            let row = Int(URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent)!
            XCTAssertEqual(Array(batch.tensor.data[(k * 784)..<((k + 1) * 784)]), Array(rows.data[(row * 784)..<((row + 1) * 784)]), file)
            XCTAssertEqual(batch.classLabels?[k], labels[row], file)
        }
        let (status, output) = try rapq(["eval", model("fmnist-resnet.onnx"), "--data", folder.path, "--channels", "gray",
                                         "--scale", "255", "--mean", "0.2860", "--std", "0.3530"])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("read 20 images") && output.contains("20x1x28x28") && output.contains("labels: from the class folders"), output)
        XCTAssertTrue(output.contains("top-1"), output)
    }
}
