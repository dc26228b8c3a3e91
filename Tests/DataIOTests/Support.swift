import DataIO
import Foundation
import TensorKernels
import TestSupport
import XCTest

/// The committed test images (tools/make_test_images.py) and the PIL reference (tools/pil_reference.py).
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let images = root.appendingPathComponent("Tests/DataIOTests/Resources/images")

    static func image(_ name: String) -> URL { images.appendingPathComponent(name) }

    /// Images that decode (the others are the bad-input cases).
    static let decodable = ["rgb.png", "interlaced.png", "rgb.jpg", "rgb-444.jpg", "progressive.jpg", "gray.png", "gray.jpg", "gray4.png",
                            "rgba.png", "gray-alpha.png", "palette.png", "cmyk.jpg", "rgb16.png"]

    /// A Python with numpy and PIL.
    static let python: (url: URL?, missing: String) = ReferencePython.find(importing: "numpy, PIL")

    static func run(_ executable: URL, _ arguments: [String]) -> (status: Int32, output: String) {
        ReferencePython.run(executable, arguments)
    }

    /// What PIL answered for one job: an array, or the text of its exception.
    enum Reference { case array(Tensor), refused(String) }

    /// Runs `jobs` through tools/pil_reference.py; skips the test when no Python with PIL is found.
    static func pil(_ jobs: [[String: Any]]) throws -> [Reference] {
        guard let python = python.url else { throw XCTSkip(python.missing) }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rapq-pil-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let jobsURL = folder.appendingPathComponent("jobs.json")
        try JSONSerialization.data(withJSONObject: jobs).write(to: jobsURL)
        let (status, output) = run(python, [root.appendingPathComponent("tools/pil_reference.py").path, jobsURL.path, folder.path])
        guard status == 0 else { throw XCTSkip("tools/pil_reference.py failed: \(output)") }
        return try jobs.indices.map { i in
            let array = folder.appendingPathComponent("\(i).npy")
            if FileManager.default.fileExists(atPath: array.path) { return .array(try NumpyFile.readTensor(contentsOf: array)) }
            return .refused((try? String(contentsOf: folder.appendingPathComponent("\(i).err"), encoding: .utf8)) ?? "no output")
        }
    }

    /// A fresh temporary folder, removed by the returned closure.
    static func temporaryFolder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rapq-images-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    /// Copies committed images into `folder` under new relative names.
    static func copy(_ pairs: [(String, String)], into folder: URL) throws {
        for (source, target) in pairs {
            let url = folder.appendingPathComponent(target)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: image(source), to: url)
        }
    }
}

extension RGBImage {
    /// The pixels as floats, to compare with a uint8 array PIL wrote.
    var floats: [Float] { pixels.map(Float.init) }
}
