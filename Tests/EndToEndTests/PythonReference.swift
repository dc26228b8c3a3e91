import Foundation

/// The Python that end-to-end tests use as an independent reference (onnx, onnxruntime, numpy).
enum PythonReference {
    /// `RAPQ_PYTHON`, else the project's `.venv-ci` or `.venv-tools`, else the system's, if it imports
    /// onnx, onnxruntime and numpy; otherwise nil and the reason.
    static func find() -> (URL?, String) {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["RAPQ_PYTHON"] { candidates.append(env) }
        candidates += [".venv-ci/bin/python", ".venv-tools/bin/python"].map { PipelineTests.root.appendingPathComponent($0).path }
        candidates.append("/usr/bin/python3")
        for path in candidates where FileManager.default.isExecutableFile(atPath: path) {
            if run(URL(fileURLWithPath: path), ["-c", "import onnx, onnxruntime, numpy"]).status == 0 { return (URL(fileURLWithPath: path), "") }
        }
        return (nil, "no Python with onnx, onnxruntime and numpy (tried \(candidates.joined(separator: ", "))); run .ci/run or set RAPQ_PYTHON")
    }

    /// Runs `executable` with `arguments`; its exit status and combined output.
    static func run(_ executable: URL, _ arguments: [String]) -> (status: Int32, output: String) {
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
