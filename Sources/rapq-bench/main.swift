// rapq-bench: speed and memory measurements of the RAPQ engine (benchmarks, not tests).
//
//   rapq-bench kernels [--reps 7]
//   rapq-bench lite0   --model M.onnx [--batch 32] [--runs 7] [--input X.npy]
//   rapq-bench integer --model M.rapq --reference FP32.onnx [--batch 32] [--runs 5] [--input X.npy]
//   rapq-bench memory  --model M.onnx|M.rapq [--batch 32] [--input X.npy] [--integer]
//   rapq-bench recon   [--block resnet|inverted-residual|all] [--batch 32] [--iters 10] [--reps 5] [--samples 128] [--profile]
//   rapq-bench images  --data DIR --preset NAME [--runs 3] [--output X.npy]
//
// Each measurement prints one JSON line (prefixed by nothing, so `grep '^{'` selects them) and one
// human-readable line (prefixed by "# "). Times are medians over the timed repetitions after warm-up.
import Foundation
import RAPQ

// MARK: - Small helpers

/// Prints an ordered JSON object on one line.
func emit(_ fields: [(String, Any)]) {
    func encode(_ value: Any) -> String {
        switch value {
        case let s as String:
            let escaped = s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            return "\"\(escaped)\""
        case let d as Double: return d.isFinite ? String(format: "%.6g", d) : "null"
        case let f as Float: return encode(Double(f))
        case let i as Int: return String(i)
        case let b as Bool: return b ? "true" : "false"
        case let a as [Int]: return "[" + a.map(String.init).joined(separator: ",") + "]"
        case let a as [Double]: return "[" + a.map { encode($0) }.joined(separator: ",") + "]"
        case Optional<Any>.none: return "null"
        default: return "\"\(value)\""
        }
    }
    print("{" + fields.map { "\"\($0.0)\":\(encode($0.1))" }.joined(separator: ",") + "}")
    fflush(stdout)
}

/// Prints a human-readable line.
func say(_ text: String) {
    print("# " + text)
    fflush(stdout)
}

/// Monotonic wall time in seconds.
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// CPU time (user + system) of the whole process so far, in seconds: on a shared machine it varies less with
/// other jobs' load than wall time does.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) * 1e-6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : 0.5 * (s[s.count / 2 - 1] + s[s.count / 2])
}

/// A field of /proc/self/status in kB (VmHWM: peak resident set size, VmRSS: current).
func procStatusKB(_ field: String) -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        let digits = line.dropFirst(field.count + 1).filter(\.isNumber)
        return Int(digits) ?? -1
    }
    return -1
}

/// Environment facts every record carries, so both OPENBLAS_CORETYPE settings (and `RAPQ_SIMD=baseline`)
/// can be told apart.
func environmentFields() -> [(String, Any)] {
    let env = ProcessInfo.processInfo.environment
    return [("openblas_coretype", env["OPENBLAS_CORETYPE"] ?? "unset"), ("threads", Parallel.threadCount),
            ("depthwise_vector_unit", VectorUnit.current.rawValue)]
}

/// Times `body` `reps` times after `warmup` untimed calls; returns every timed duration in seconds.
func timeRuns(warmup: Int, reps: Int, _ body: () throws -> Void) rethrows -> [Double] {
    for _ in 0..<warmup { try body() }
    var times: [Double] = []
    for _ in 0..<reps {
        let t0 = now()
        try body()
        times.append(now() - t0)
    }
    return times
}

/// Command-line options as `--name value` pairs plus bare `--flag`s.
struct Options {
    var values: [String: String] = [:]
    var flags: Set<String> = []

    init(_ args: ArraySlice<String>, flagNames: Set<String>) throws {
        var it = args.makeIterator()
        while let a = it.next() {
            guard a.hasPrefix("--") else { throw BenchError.usage("unexpected argument '\(a)'") }
            let name = String(a.dropFirst(2))
            if flagNames.contains(name) { flags.insert(name); continue }
            guard let v = it.next() else { throw BenchError.usage("\(a) needs a value") }
            values[name] = v
        }
    }

    func int(_ name: String, _ fallback: Int) throws -> Int {
        guard let text = values[name] else { return fallback }
        guard let v = Int(text), v > 0 else { throw BenchError.usage("--\(name) must be a positive integer, got '\(text)'") }
        return v
    }

    func string(_ name: String) throws -> String {
        guard let v = values[name] else { throw BenchError.usage("--\(name) is required") }
        return v
    }
}

enum BenchError: Error, CustomStringConvertible {
    case usage(String)
    var description: String {
        switch self {
        case .usage(let m): return "\(m)\n\n" + usageText
        }
    }
}

let usageText = """
usage: rapq-bench kernels [--reps 7]
       rapq-bench lite0   --model M.onnx [--batch 32] [--runs 7] [--input X.npy]
       rapq-bench integer --model M.rapq --reference FP32.onnx [--batch 32] [--runs 5] [--input X.npy]
       rapq-bench memory  --model M.onnx|M.rapq [--batch 32] [--input X.npy] [--integer]
       rapq-bench recon   [--block resnet|inverted-residual|all] [--batch 32] [--iters 10] [--reps 5] [--samples 128] [--profile]
       rapq-bench images  --data DIR --preset NAME [--runs 3] [--output X.npy]   (X.txt gets the file of each row)
"""

/// A random tensor with a fixed seed (values in [-1, 1)).
func randomTensor(_ shape: [Int], seed: UInt64) -> Tensor {
    var state = seed &+ 0x9E37_79B9_7F4A_7C15
    let n = shape.reduce(1, *)
    var data = [Float](repeating: 0, count: n)
    for i in 0..<n {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        data[i] = Float(Int64(bitPattern: state >> 11) & 0xFFFFFF) / Float(1 << 23) - 1
    }
    return Tensor(shape: shape, data: data)
}

/// The model input batch: the first `batch` samples of `path` (tiled when shorter), or seeded noise.
func inputBatch(path: String?, shape: [Int?], batch: Int) throws -> Tensor {
    if let path {
        let x = try NumpyFile.readTensor(contentsOf: URL(fileURLWithPath: path))
        let n = x.shape[0], per = x.count / n
        var data = [Float]()
        data.reserveCapacity(batch * per)
        for i in 0..<batch { data += x.data[(i % n) * per..<(i % n + 1) * per] }
        return Tensor(shape: [batch] + x.shape.dropFirst(), data: data)
    }
    return randomTensor([batch] + shape.dropFirst().map { $0 ?? 1 }, seed: 7)
}

// MARK: - kernels

/// sgemm GFLOP/s through `BLAS.sgemm`, at BLAS thread counts 1 and `Parallel.threadCount`, and as
/// `threadCount` concurrent single-thread products (the way the conv kernels use BLAS).
func benchSgemm(m: Int, n: Int, k: Int, reps: Int) -> Double {
    let a = randomTensor([m, k], seed: 1), b = randomTensor([k, n], seed: 2)
    let flops = 2.0 * Double(m) * Double(n) * Double(k)
    let workers = Parallel.threadCount
    var best = 0.0
    var outputs = [[Float]](repeating: [Float](repeating: 0, count: m * n), count: workers)
    func one(_ w: Int) {
        a.withUnsafeBufferPointer { A in
            b.withUnsafeBufferPointer { B in
                outputs[w].withUnsafeMutableBufferPointer { C in
                    BLAS.sgemm(transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: A.baseAddress!, lda: k,
                               b: B.baseAddress!, ldb: n, beta: 0, c: C.baseAddress!, ldc: n)
                }
            }
        }
    }
    for (mode, blasThreads) in [("blas-1-thread", 1), ("blas-\(workers)-threads", workers)] {
        BLAS.setThreadCount(blasThreads)
        let times = timeRuns(warmup: 2, reps: reps) { for _ in 0..<10 { one(0) } }
        let gflops = 10 * flops / median(times) / 1e9
        best = max(best, gflops)
        emit([("bench", "sgemm"), ("mode", mode), ("m", m), ("n", n), ("k", k), ("reps", reps),
              ("median_s", median(times)), ("gflops", gflops)] + environmentFields())
        say(String(format: "sgemm %dx%dx%d %@: %.1f GFLOP/s (median of %d)", m, n, k, mode, gflops, reps))
    }
    BLAS.setThreadCount(1)
    // One single-thread product per worker, concurrently: the aggregate rate the conv kernels can reach.
    let times = timeRuns(warmup: 2, reps: reps) {
        outputs.withUnsafeMutableBufferPointer { outs in
            a.withUnsafeBufferPointer { A in
                b.withUnsafeBufferPointer { B in
                    let base = outs.baseAddress!
                    Parallel.forEach(workers) { w in
                        base[w].withUnsafeMutableBufferPointer { C in
                            for _ in 0..<10 {
                                BLAS.sgemm(transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: A.baseAddress!, lda: k,
                                           b: B.baseAddress!, ldb: n, beta: 0, c: C.baseAddress!, ldc: n)
                            }
                        }
                    }
                }
            }
        }
    }
    let gflops = 10 * Double(workers) * flops / median(times) / 1e9
    best = max(best, gflops)
    emit([("bench", "sgemm"), ("mode", "\(workers)x-concurrent-1-thread"), ("m", m), ("n", n), ("k", k), ("reps", reps),
          ("median_s", median(times)), ("gflops", gflops)] + environmentFields())
    say(String(format: "sgemm %dx%dx%d %dx concurrent 1-thread: %.1f GFLOP/s aggregate (median of %d)", m, n, k, workers, gflops, reps))
    return best
}

/// Aggregate GFLOP/s of `Parallel.threadCount` concurrent single-thread `BLAS.sgemm` calls of one shape,
/// each worker repeating its product `calls` times: the rate the conv kernels (one BLAS product per
/// worker, BLAS at one thread) can reach. Returns the seconds taken.
struct ConcurrentGemm {
    let m: Int, n: Int, k: Int, calls: Int
    let a: Tensor, b: Tensor
    var outputs: [[Float]]

    init(m: Int, n: Int, k: Int, calls: Int) {
        self.m = m; self.n = n; self.k = k; self.calls = calls
        a = randomTensor([m, k], seed: 1)
        b = randomTensor([k, n], seed: 2)
        outputs = [[Float]](repeating: [Float](repeating: 0, count: m * n), count: Parallel.threadCount)
    }

    var flops: Double { 2.0 * Double(m * n * k) * Double(calls * Parallel.threadCount) }

    mutating func run() -> Double {
        let (m, n, k, calls) = (self.m, self.n, self.k, self.calls)
        let t0 = now()
        outputs.withUnsafeMutableBufferPointer { outs in
            a.withUnsafeBufferPointer { A in
                b.withUnsafeBufferPointer { B in
                    let base = outs.baseAddress!
                    Parallel.forEach(Parallel.threadCount) { w in
                        base[w].withUnsafeMutableBufferPointer { C in
                            for _ in 0..<calls {
                                BLAS.sgemm(transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: A.baseAddress!, lda: k,
                                           b: B.baseAddress!, ldb: n, beta: 0, c: C.baseAddress!, ldc: n)
                            }
                        }
                    }
                }
            }
        }
        return now() - t0
    }
}

/// Conv2D forward and backward GFLOP/s for one layer shape, and their fraction of the sgemm rate measured
/// in the same repetition (sgemm 512^3 and 64x3136x576, both cores, right before the conv), so machine
/// load affects numerator and denominator alike. Fractions are medians of the per-repetition ratios.
func benchConv(name: String, input: [Int], outChannels: Int, groups: Int, reps: Int) {
    let c = input[1], h = input[2], w = input[3]
    let x = randomTensor(input, seed: 3)
    let weight = randomTensor([outChannels, c / groups, 3, 3], seed: 4)
    let bias = randomTensor([outChannels], seed: 5)
    let parameters = Conv2DParameters(window: WindowGeometry(kernel: (3, 3), pads: (1, 1, 1, 1)), groups: groups)
    // Multiply-adds of the forward pass x 2; the backward pass (input and weight gradients) does twice that.
    let forwardFlops = 2.0 * Double(input[0] * outChannels * (c / groups) * 9 * h * w)
    var square = ConcurrentGemm(m: 512, n: 512, k: 512, calls: 20)
    var shaped = ConcurrentGemm(m: 64, n: 3136, k: 576, calls: 20)
    BLAS.setThreadCount(1)
    var y = Conv2D.forward(x, weight: weight, bias: bias, parameters: parameters)
    let dy = randomTensor(y.shape, seed: 6)
    _ = Conv2D.backward(x, weight: weight, outputGradient: dy, parameters: parameters, needInputGradient: true)
    _ = square.run(); _ = shaped.run()
    var rows: [String: [Double]] = [:]
    for _ in 0..<reps {
        let rSquare = square.flops / square.run() / 1e9
        let rShaped = shaped.flops / shaped.run() / 1e9
        var t0 = now()
        y = Conv2D.forward(x, weight: weight, bias: bias, parameters: parameters)
        let fwd = forwardFlops / (now() - t0) / 1e9
        t0 = now()
        _ = Conv2D.backward(x, weight: weight, outputGradient: dy, parameters: parameters, needInputGradient: true)
        let bwd = 2 * forwardFlops / (now() - t0) / 1e9
        rows["sgemm512", default: []].append(rSquare)
        rows["sgemmShaped", default: []].append(rShaped)
        rows["forward", default: []].append(fwd)
        rows["backward", default: []].append(bwd)
        rows["forward/512", default: []].append(fwd / rSquare)
        rows["forward/shaped", default: []].append(fwd / rShaped)
        rows["backward/512", default: []].append(bwd / rSquare)
        rows["backward/shaped", default: []].append(bwd / rShaped)
    }
    _ = y
    for pass in ["forward", "backward"] {
        let gflops = median(rows[pass]!)
        let f512 = median(rows[pass + "/512"]!), fShaped = median(rows[pass + "/shaped"]!)
        emit([("bench", "conv2d"), ("layer", name), ("pass", pass), ("input", input), ("out_channels", outChannels),
              ("groups", groups), ("reps", reps), ("gflops", gflops), ("gflops_runs", rows[pass]!),
              ("interleaved_sgemm_512_gflops", median(rows["sgemm512"]!)),
              ("interleaved_sgemm_64x3136x576_gflops", median(rows["sgemmShaped"]!)),
              ("fraction_of_sgemm_512", f512), ("fraction_of_sgemm_64x3136x576", fShaped)] + environmentFields())
        say(String(format: "conv %@ %@: %.1f GFLOP/s = %.0f%% of sgemm 512^3 (%.1f), %.0f%% of sgemm 64x3136x576 (%.1f), interleaved, median of %d",
                   name, pass, gflops, 100 * f512, median(rows["sgemm512"]!), 100 * fShaped, median(rows["sgemmShaped"]!), reps))
    }
}

func runKernels(_ options: Options) throws {
    let reps = try options.int("reps", 7)
    say("kernels: OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "unset"), \(Parallel.threadCount) worker threads")
    _ = benchSgemm(m: 512, n: 512, k: 512, reps: reps)
    _ = benchSgemm(m: 64, n: 3136, k: 576, reps: reps)
    BLAS.setThreadCount(1)
    benchConv(name: "3x3 64->64 32x64x56x56", input: [32, 64, 56, 56], outChannels: 64, groups: 1, reps: reps)
    benchConv(name: "depthwise 3x3 32x96x112x112", input: [32, 96, 112, 112], outChannels: 96, groups: 96, reps: reps)
}

// MARK: - lite0 (FP32 engine throughput and peak memory)

func runLite0(_ options: Options) throws {
    let path = try options.string("model")
    let batch = try options.int("batch", 32), runs = try options.int("runs", 7)
    let model = try FloatModel(contentsOf: URL(fileURLWithPath: path))
    let x = try inputBatch(path: options.values["input"], shape: model.graph.inputs[0].dimensions, batch: batch)
    let rssLoaded = procStatusKB("VmHWM")
    let times = try timeRuns(warmup: 1, reps: runs) { _ = try model.predict(x, batchSize: batch) }
    let med = median(times)
    let peak = procStatusKB("VmHWM")
    emit([("bench", "fp32-inference"), ("engine", "rapq-swift"), ("model", (path as NSString).lastPathComponent), ("batch", batch),
          ("runs", runs), ("median_s", med), ("min_s", times.min()!), ("images_per_s", Double(batch) / med),
          ("peak_rss_mb", Double(peak) / 1024), ("rss_after_load_mb", Double(rssLoaded) / 1024)] + environmentFields())
    say(String(format: "FP32 engine %@ batch %d: %.2f images/s (median %.3f s of %d), peak RSS %.0f MB",
               (path as NSString).lastPathComponent, batch, Double(batch) / med, med, runs, Double(peak) / 1024))
}

// MARK: - integer (integer engine vs simulation vs FP32 engine)

func runInteger(_ options: Options) throws {
    let path = try options.string("model"), reference = try options.string("reference")
    let batch = try options.int("batch", 32), runs = try options.int("runs", 5)
    let network = try RAPQFile.read(contentsOf: URL(fileURLWithPath: path))
    let float = try FloatModel(contentsOf: URL(fileURLWithPath: reference))
    let integer = try IntegerEngine(network), simulation = try Simulation(network)
    let x = try inputBatch(path: options.values["input"], shape: float.graph.inputs[0].dimensions, batch: batch)
    let engines: [(String, () throws -> Tensor)] = [
        ("integer-engine", { try integer.predict(x, batchSize: batch) }),
        ("fp32-simulation", { try simulation.predict(x, batchSize: batch) }),
        ("fp32-engine", { try float.predict(x, batchSize: batch) }),
    ]
    // Warm-up, then interleave the engines run by run so machine noise hits each alike.
    for (_, body) in engines { _ = try body() }
    var times = [[Double]](repeating: [], count: engines.count)
    for _ in 0..<runs {
        for (i, (_, body)) in engines.enumerated() {
            let t0 = now()
            _ = try body()
            times[i].append(now() - t0)
        }
    }
    let fp32 = Double(batch) / median(times[2])
    for (i, (name, _)) in engines.enumerated() {
        let ips = Double(batch) / median(times[i])
        emit([("bench", "integer-vs-float"), ("engine", name), ("model", (path as NSString).lastPathComponent), ("method", network.method),
              ("wbits", network.bits.weights), ("abits", network.bits.activations), ("batch", batch), ("runs", runs),
              ("median_s", median(times[i])), ("images_per_s", ips), ("ratio_to_fp32_engine", ips / fp32)] + environmentFields())
        say(String(format: "%@ (%@ W%dA%d) batch %d: %.2f images/s, %.2fx the FP32 engine", name, network.method,
                   network.bits.weights, network.bits.activations, batch, ips, ips / fp32))
    }
}

// MARK: - memory (one forward pass, peak RSS)

func runMemory(_ options: Options) throws {
    let path = try options.string("model")
    let batch = try options.int("batch", 32)
    let start = procStatusKB("VmHWM")
    let t0 = now()
    let engine: String
    if path.hasSuffix(".rapq") {
        let network = try RAPQFile.read(contentsOf: URL(fileURLWithPath: path))
        let shape = network.graph.inputs[0].dimensions
        let x = try inputBatch(path: options.values["input"], shape: shape, batch: batch)
        if options.flags.contains("integer") {
            engine = "integer-engine"
            _ = try IntegerEngine(network).predict(x, batchSize: batch)
        } else {
            engine = "fp32-simulation"
            _ = try Simulation(network).predict(x, batchSize: batch)
        }
    } else {
        engine = "fp32-engine"
        let model = try FloatModel(contentsOf: URL(fileURLWithPath: path))
        let x = try inputBatch(path: options.values["input"], shape: model.graph.inputs[0].dimensions, batch: batch)
        _ = try model.predict(x, batchSize: batch)
    }
    let peak = procStatusKB("VmHWM")
    emit([("bench", "memory"), ("engine", engine), ("model", (path as NSString).lastPathComponent), ("batch", batch),
          ("seconds", now() - t0), ("peak_rss_mb", Double(peak) / 1024), ("rss_at_start_mb", Double(start) / 1024)] + environmentFields())
    say(String(format: "%@ %@ one pass at batch %d: peak RSS %.0f MB", engine, (path as NSString).lastPathComponent, batch, Double(peak) / 1024))
}

// MARK: - recon (one weight-reconstruction iteration of a unit)

/// A reconstruction unit built in code: its graph (BN already folded: convs with biases), node names, output,
/// and the shape of one input sample.
struct BenchUnit {
    let name: String
    let graph: Graph
    let nodes: [String]
    let output: String
    let sample: [Int]
}

/// Conv node and its seeded He-initialised weight and small bias.
func benchConvLayer(_ name: String, input: String, output: String, in c: Int, out m: Int, kernel k: Int, groups: Int = 1,
                    seed: UInt64, into initializers: inout [String: Tensor]) -> Node {
    let fanIn = c / groups * k * k
    var w = randomTensor([m, c / groups, k, k], seed: seed)
    let std = Float((2.0 / Double(fanIn)).squareRoot() * 3.0.squareRoot())  // uniform [-1, 1) has variance 1/3
    for i in w.data.indices { w.data[i] *= std }
    var b = randomTensor([m], seed: seed + 1)
    for i in b.data.indices { b.data[i] *= 0.05 }
    initializers[name + ".w"] = w
    initializers[name + ".b"] = b
    let window = WindowGeometry(kernel: (k, k), pads: (k / 2, k / 2, k / 2, k / 2))
    return Node(name: name, op: .conv(Conv2DParameters(window: window, groups: groups)), inputs: [input, name + ".w", name + ".b"],
                outputs: [output])
}

/// ResNet basic block (BN folded): conv 3x3 C->C, ReLU, conv 3x3 C->C, Add identity, ReLU.
func resnetBlockUnit(channels c: Int, size: Int) -> BenchUnit {
    var inits: [String: Tensor] = [:]
    let nodes = [
        benchConvLayer("conv1", input: "x", output: "c1", in: c, out: c, kernel: 3, seed: 11, into: &inits),
        Node(name: "relu1", op: .relu, inputs: ["c1"], outputs: ["r1"]),
        benchConvLayer("conv2", input: "r1", output: "c2", in: c, out: c, kernel: 3, seed: 13, into: &inits),
        Node(name: "add", op: .add, inputs: ["c2", "x"], outputs: ["s"]),
        Node(name: "relu2", op: .relu, inputs: ["s"], outputs: ["y"]),
    ]
    let graph = Graph(name: "resnet-basic-block", inputs: [ValueInfo(name: "x", dimensions: [nil, c, size, size])],
                      outputs: [ValueInfo(name: "y", dimensions: [nil, c, size, size])], nodes: nodes, initializers: inits)
    return BenchUnit(name: "resnet-basic-block \(c)x\(size)x\(size)", graph: graph, nodes: nodes.map(\.name), output: "y",
                     sample: [c, size, size])
}

/// MobileNetV2 inverted residual (BN folded): 1x1 C->tC, ReLU6, depthwise 3x3 tC, ReLU6, 1x1 tC->C, Add identity.
func invertedResidualUnit(channels c: Int, expansion t: Int, size: Int) -> BenchUnit {
    var inits: [String: Tensor] = [:]
    let e = c * t
    let nodes = [
        benchConvLayer("expand", input: "x", output: "e", in: c, out: e, kernel: 1, seed: 21, into: &inits),
        Node(name: "relu6a", op: .clip(min: 0, max: 6), inputs: ["e"], outputs: ["ea"]),
        benchConvLayer("depthwise", input: "ea", output: "d", in: e, out: e, kernel: 3, groups: e, seed: 23, into: &inits),
        Node(name: "relu6b", op: .clip(min: 0, max: 6), inputs: ["d"], outputs: ["da"]),
        benchConvLayer("project", input: "da", output: "p", in: e, out: c, kernel: 1, seed: 25, into: &inits),
        Node(name: "add", op: .add, inputs: ["p", "x"], outputs: ["y"]),
    ]
    let graph = Graph(name: "inverted-residual", inputs: [ValueInfo(name: "x", dimensions: [nil, c, size, size])],
                      outputs: [ValueInfo(name: "y", dimensions: [nil, c, size, size])], nodes: nodes, initializers: inits)
    return BenchUnit(name: "inverted-residual \(c)->\(e)->\(c) \(size)x\(size)", graph: graph, nodes: nodes.map(\.name), output: "y",
                     sample: [c, size, size])
}

/// Conv FLOPs (2 per multiply-add) of one iteration at `batch`: every conv's forward and weight gradient,
/// and the input gradient of every conv whose input is produced inside the unit (the unit's own input
/// needs none, so `SubgraphProgram.backward` does not compute it).
func reconFlops(_ unit: BenchUnit, batch: Int) -> (forward: Double, backward: Double) {
    var shapes: [String: [Int]] = ["x": [batch] + unit.sample]
    var forward = 0.0, backward = 0.0
    for node in unit.graph.nodes {
        let x = shapes[node.inputs[0]]!
        switch node.op {
        case .conv(let p):
            let w = unit.graph.initializers[node.inputs[1]]!.shape
            let out = p.window.outputSize(height: x[2], width: x[3])
            let f = 2.0 * Double(batch * w[0] * w[1] * w[2] * w[3] * out.h * out.w)
            forward += f
            backward += node.inputs[0] == "x" ? f : 2 * f
            shapes[node.outputs[0]] = [batch, w[0], out.h, out.w]
        default:
            shapes[node.outputs[0]] = x
        }
    }
    return (forward, backward)
}

/// Times `UnitWeightReconstruction.iterate` (the reconstruction code path: soft weights with learned
/// exponents, forward, L_p loss, backward, regularisers, Adam) on one unit, mini-batches drawn from a cache of
/// `samples` inputs and FP32 targets as `Reconstructor` does, W4 asymmetric per-channel weights (RAPQ:
/// exponents learned, rounding regulariser past its warm-up, so every term is computed). Each repetition
/// first measures the sgemm rate (both cores, 2 concurrent 1-thread products of 64x3136x576, the shape of the
/// 3x3 64->64 conv), then times `iters` iterations; fractions are medians of per-repetition ratios.
/// With `profile`, no sgemm is measured, so that a sampling profiler sees only the iterations (and the setup).
func benchRecon(_ unit: BenchUnit, batch: Int, iters: Int, reps: Int, samples: Int, profile: Bool) throws {
    BLAS.setThreadCount(1)
    let program = try SubgraphProgram(graph: unit.graph, nodeNames: unit.nodes, output: unit.output)
    var x = randomTensor([samples] + unit.sample, seed: 31)
    for i in x.data.indices { x.data[i] = max(0, x.data[i]) * 2 }  // block inputs are post-activation
    // Targets: the FP32 unit on the cached inputs; the quantized path reads the same inputs.
    let target = try x.mapBatches(of: batch) { try program.forward(["x": $0]).output }
    let grid = QuantizationGrid(bits: 4, signed: false)
    let convs = unit.graph.nodes.filter { if case .conv = $0.op { return true } else { return false } }
    let roundings = convs.map { node -> LayerRounding in
        let w = unit.graph.initializers[node.inputs[1]]!, b = unit.graph.initializers[node.inputs[2]]!
        let layer = QuantizedLayer.quantize(node: node.name, weights: w.data, shape: w.shape, bias: b.data, input: node.inputs[0],
                                            parameters: ScaleSearch.searchPerChannel(w.data, channels: w.shape[0], grid: grid, policy: .float))
        return LayerRounding(layer: layer, weights: w.data, learnExponent: true, learningRate: 1e-3, exponentLearningRate: 1e-2)
    }
    let total = 1000
    let schedule = RoundingRegularizer(weight: 0.01, iterations: total), exponentSchedule = RoundingRegularizer(weight: 0.1, iterations: total)
    var phase = UnitWeightReconstruction(program: program, roundings: roundings, weightNames: convs.map { $0.inputs[1] },
                                         weightShapes: convs.map { unit.graph.initializers[$0.inputs[1]]!.shape }, lossExponent: 2.4,
                                         roundingSchedule: schedule, exponentSchedule: exponentSchedule)
    var rng = SeededGenerator(seed: 5)
    var t = Int(schedule.warmup * Float(total)) + 1
    func iteration() throws {
        let indices = rng.sample(batch, from: samples)
        _ = try phase.iterate(inputs: ["x": x.rows(indices)], target: target.rows(indices), iteration: t, learningExponents: true)
        t += 1
    }
    let flops = reconFlops(unit, batch: batch)
    var shaped = ConcurrentGemm(m: 64, n: 3136, k: 576, calls: 10)
    try iteration(); try iteration()
    if !profile { _ = shaped.run() }
    var perIteration: [Double] = [], gflops: [Double] = [], sgemm: [Double] = [], fractions: [Double] = [], cpu: [Double] = []
    for _ in 0..<reps {
        let rate = profile ? Double.nan : shaped.flops / shaped.run() / 1e9
        let t0 = now(), c0 = processCPUSeconds()
        for _ in 0..<iters { try iteration() }
        let seconds = (now() - t0) / Double(iters)
        cpu.append((processCPUSeconds() - c0) / Double(iters))
        let g = (flops.forward + flops.backward) / seconds / 1e9
        perIteration.append(seconds); gflops.append(g); sgemm.append(rate); fractions.append(g / rate)
    }
    let s = median(perIteration)
    emit([("bench", "recon"), ("unit", unit.name), ("batch", batch), ("iters", iters), ("reps", reps), ("samples", samples),
          ("median_iteration_s", s), ("iteration_s_runs", perIteration), ("sample_iters_per_s", Double(batch) / s),
          ("median_iteration_cpu_s", median(cpu)),
          ("gflop_forward", flops.forward / 1e9), ("gflop_backward", flops.backward / 1e9), ("gflops", median(gflops)),
          ("interleaved_sgemm_64x3136x576_gflops", median(sgemm)), ("fraction_of_sgemm", median(fractions)),
          ("glibc_tunables", ProcessInfo.processInfo.environment["GLIBC_TUNABLES"] ?? "unset")] + environmentFields())
    say(String(format: "recon %@ batch %d: %.1f ms/iteration (%.0f ms CPU), %.0f samples*iters/s, %.1f GFLOP/s (%.2f GFLOP fwd+bwd) = %.0f%% of sgemm 64x3136x576 (%.1f), median of %d x %d",
               unit.name, batch, 1000 * s, 1000 * median(cpu), Double(batch) / s, median(gflops), (flops.forward + flops.backward) / 1e9,
               100 * median(fractions), median(sgemm), reps, iters))
}

func runRecon(_ options: Options) throws {
    let batch = try options.int("batch", 32), iters = try options.int("iters", 10), reps = try options.int("reps", 5)
    let samples = try options.int("samples", 128)
    guard samples >= batch else { throw BenchError.usage("--samples must be at least --batch") }
    let block = options.values["block"] ?? "all"
    let units: [BenchUnit]
    switch block {
    case "resnet": units = [resnetBlockUnit(channels: 64, size: 56)]
    case "inverted-residual": units = [invertedResidualUnit(channels: 24, expansion: 6, size: 56)]
    case "all": units = [resnetBlockUnit(channels: 64, size: 56), invertedResidualUnit(channels: 24, expansion: 6, size: 56)]
    default: throw BenchError.usage("--block must be resnet, inverted-residual or all, got '\(block)'")
    }
    say("recon: OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "unset"), \(Parallel.threadCount) worker threads")
    for unit in units {
        try benchRecon(unit, batch: batch, iters: iters, reps: reps, samples: samples, profile: options.flags.contains("profile"))
    }
}

// MARK: - images

/// Decoding and preprocessing speed of a folder of images with a preset; optionally writes the batch (and
/// the file of each row) for benchmarks/compare_preprocessing.py to compare with PIL.
func runImages(_ options: Options) throws {
    let folder = try ImageFolder(contentsOf: URL(fileURLWithPath: try options.string("data")))
    let name = try options.string("preset")
    let preprocessing = try Preprocessing.preset(named: name)
    var batch: ImageBatch?
    let times = try timeRuns(warmup: 0, reps: try options.int("runs", 3)) { batch = try folder.load(preprocessing) }
    let images = batch!.files.count
    emit([("bench", "images"), ("preset", name), ("images", images), ("median_s", median(times)),
          ("images_per_s", Double(images) / median(times))] + environmentFields())
    say(String(format: "images: %d files, preset %@, %.3f s median (%.1f images/s)", images, name, median(times), Double(images) / median(times)))
    if let output = options.values["output"] {
        let url = URL(fileURLWithPath: output)
        try NumpyFile.write(batch!.tensor, to: url)
        try AtomicFile.write(Data(batch!.files.map { folder.url(of: $0).path + "\n" }.joined().utf8),
                             to: url.deletingPathExtension().appendingPathExtension("txt"))
    }
}

// MARK: - main

let arguments = CommandLine.arguments
HeapPolicy.reuseLargeBlocks()  // as the engines do; the kernel figures then exclude fresh-page faults
do {
    guard arguments.count >= 2 else { throw BenchError.usage("missing subcommand") }
    let rest = arguments.dropFirst(2)
    switch arguments[1] {
    case "kernels": try runKernels(Options(rest, flagNames: []))
    case "lite0": try runLite0(Options(rest, flagNames: []))
    case "integer": try runInteger(Options(rest, flagNames: []))
    case "memory": try runMemory(Options(rest, flagNames: ["integer"]))
    case "recon": try runRecon(Options(rest, flagNames: ["profile"]))
    case "images": try runImages(Options(rest, flagNames: []))
    case "-h", "--help", "help": print(usageText)
    default: throw BenchError.usage("unknown subcommand '\(arguments[1])'")
    }
} catch {
    FileHandle.standardError.write(Data("rapq-bench: \(error)\n".utf8))
    exit(1)
}
