import Foundation
import RAPQ

/// Prints quantization progress: a line rewritten in place on a terminal, periodic plain lines otherwise.
final class ProgressReporter {
    private let isTerminal = isatty(fileno(stdout)) != 0
    private var lastPlainLine = Date.distantPast
    private var unitStarted: (key: String, time: Date)?

    func report(_ event: QuantizationProgress) {
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
