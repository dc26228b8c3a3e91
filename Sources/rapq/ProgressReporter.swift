import ArgumentParser
import Foundation
import RAPQ

/// `--quiet`, shared by the commands that show progress.
struct ProgressOptions: ParsableArguments {
    @Flag(help: "Show no progress (decoding, evaluation, calibration and reconstruction lines); results and errors are still printed.")
    var quiet = false

    func apply() { ProgressLine.enabled = !quiet }
}

/// Prints quantization progress: a line rewritten in place on a terminal, periodic plain lines otherwise;
/// nothing with `--quiet`.
final class ProgressReporter {
    private let isTerminal = isatty(fileno(stdout)) != 0
    private var lastPlainLine = Date.distantPast
    private var unitStarted: (key: String, time: Date)?

    func report(_ event: QuantizationProgress) {
        guard ProgressLine.enabled else { return }
        switch event {
        case .status(let line):
            if isTerminal { print("\r\u{1B}[K", terminator: "") }
            print(line)
            fflush(stdout)
        case .reconstruction(let e):
            let fraction = (Double(e.unit - 1) + Double(e.iteration) / Double(e.iterations)) / Double(e.units)
            let eta = fraction > 0 ? e.elapsed * (1 - fraction) / fraction : 0
            let line = String(format: "%@ unit %d/%d %@ iter %d/%d  loss %.4f (p %.1f)  round %.4f  exp %.4f  elapsed %.0fs  ETA %.0fs",
                              e.phase, e.unit, e.units, e.unitName, e.iteration, e.iterations, e.reconstructionLoss, e.p,
                              e.roundingLoss, e.exponentLoss, e.elapsed, eta)
            if isTerminal {
                print("\r\u{1B}[K" + line, terminator: e.iteration == e.iterations ? "\n" : "")
                fflush(stdout)
            } else if e.iteration == e.iterations || Date().timeIntervalSince(lastPlainLine) > 10 {
                print(line)
                fflush(stdout)
                lastPlainLine = Date()
            }
        }
    }
}

/// Prints `BLAS.slowKernelAdvice` to standard error, if there is any (before long runs).
func adviseOnBLASKernels() {
    guard let advice = BLAS.slowKernelAdvice else { return }
    FileHandle.standardError.write(Data((advice + "\n").utf8))
}

/// The progress of one step that handles many items (images decoded, samples evaluated), on standard
/// error: on a terminal one line rewritten in place once the step has run for a second; otherwise a plain
/// line every 10 seconds, and a last one when the step ends, for steps that run that long. Items done,
/// total, rate and the time left.
final class ProgressLine {
    /// False with `--quiet`.
    nonisolated(unsafe) static var enabled = true

    private let title: String
    private let unit: String
    private let start = Date()
    private var lastPlainLine: Date
    private var shown = false
    private let isTerminal = isatty(STDERR_FILENO) != 0

    init(_ title: String, unit: String) {
        self.title = title
        self.unit = unit
        lastPlainLine = start
    }

    /// `done` of `total` items are finished.
    func update(_ done: Int, _ total: Int) {
        guard Self.enabled, total > 0 else { return }
        let now = Date(), elapsed = now.timeIntervalSince(start), finished = done >= total
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let left = rate > 0 ? Double(total - done) / rate : 0
        let line = String(format: "%@: %d/%d %@, %.1f/s, elapsed %.0f s, %@", title, done, total, unit, rate, elapsed,
                          finished ? "done" : String(format: "ETA %.0f s", left))
        if isTerminal {
            guard shown || elapsed >= 1 else { return }
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line + (finished ? "\n" : "")).utf8))
            shown = true
        } else if now.timeIntervalSince(lastPlainLine) >= 10 || (finished && shown) {
            FileHandle.standardError.write(Data((line + "\n").utf8))
            lastPlainLine = now
            shown = true
        }
    }
}
