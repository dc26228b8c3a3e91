import Foundation

/// The Python that tests use as an independent reference (onnxruntime, onnx, numpy, PIL), and a way to run it.
public enum ReferencePython {
    /// The repository's root folder.
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The first Python that imports every module of `modules` (e.g. "onnx, onnxruntime, numpy"):
    /// `RAPQ_PYTHON`, else the project's `.venv-ci` or `.venv-tools`, else the system's; otherwise nil and
    /// the reason, for `XCTSkip`.
    public static func find(importing modules: String) -> (URL?, String) {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["RAPQ_PYTHON"] { candidates.append(env) }
        candidates += [".venv-ci/bin/python", ".venv-tools/bin/python"].map { root.appendingPathComponent($0).path }
        candidates += ["/usr/bin/python3", "/usr/local/bin/python3"]
        for path in candidates where FileManager.default.isExecutableFile(atPath: path) {
            if run(URL(fileURLWithPath: path), ["-c", "import \(modules)"]).status == 0 { return (URL(fileURLWithPath: path), "") }
        }
        return (nil, "no Python that imports \(modules) (tried \(candidates.joined(separator: ", "))); run .ci/run or set RAPQ_PYTHON")
    }

    /// Runs `executable` with `arguments`; its exit status and combined standard output and error.
    @discardableResult
    public static func run(_ executable: URL, _ arguments: [String]) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch { return (-1, "\(error)") }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}
