import Foundation

/// Ctrl-C (SIGINT) and SIGTERM stop a command cleanly: the handler removes this process's reconstruction
/// cache folders and half-written temporaries, says so on stderr, and exits with the shell's status for the
/// signal (130 for SIGINT, 143 for SIGTERM). Outputs are only ever renamed into place when complete, so an
/// interrupted command leaves its inputs and any previous outputs as they were.
enum Interruption {
    /// The installed signal sources (kept alive for the process's lifetime).
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []

    /// Installs the handlers; `outputs` are the files (or folders, for `folder: true`) the command may write,
    /// whose temporaries are removed; `cacheDirectory` is where reconstruction caches are created.
    static func install(outputs: [String] = [], outputFolders: [String] = [], cacheDirectory: URL? = nil) {
        // A file-size limit (`ulimit -f`) then fails the write with EFBIG, which the writers report and clean
        // up after, instead of killing the process with its temporary left behind.
        signal(SIGXFSZ, SIG_IGN)
        let pid = getpid()
        let cache = cacheDirectory ?? FileManager.default.temporaryDirectory
        let temporaryPlaces = outputs.map { URL(fileURLWithPath: $0) }.map { ($0.deletingLastPathComponent(), ".\($0.lastPathComponent).partial-\(pid)-") }
            + outputFolders.map { (URL(fileURLWithPath: $0), ".") }
        for (number, name, status) in [(SIGINT, "SIGINT", Int32(130)), (SIGTERM, "SIGTERM", Int32(143))] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                removeEntries(in: cache, prefix: "rapq-cache-\(pid)-")
                for (folder, prefix) in temporaryPlaces { removeEntries(in: folder, prefix: prefix, suffixContaining: ".partial-\(pid)-") }
                FileHandle.standardError.write(Data("\nError: interrupted by \(name); stopped without writing the output (inputs, earlier outputs and checkpoints are unchanged)\n".utf8))
                _exit(status)
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Removes the entries of `folder` whose names start with `prefix` (and contain `suffixContaining`).
    private static func removeEntries(in folder: URL, prefix: String, suffixContaining marker: String? = nil) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return }
        for name in names where name.hasPrefix(prefix) && (marker.map { name.contains($0) } ?? true) {
            try? FileManager.default.removeItem(at: folder.appendingPathComponent(name))
        }
    }
}
