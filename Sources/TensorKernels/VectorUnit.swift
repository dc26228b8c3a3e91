#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The vector instruction set the depthwise convolution kernel runs with on this machine.
///
/// The tool is built for baseline x86-64 (SSE2), so that one binary runs on any x86-64 CPU; the depthwise
/// inner loops are also built for AVX2 (module `DepthwiseAVX2`) and used when the CPU and the operating
/// system support it. Both give the same bits. `RAPQ_SIMD=baseline` forces the baseline loops (to compare
/// the two, or to rule the wider ones out).
public enum VectorUnit: String, Sendable {
    case baseline
    case avx2

    /// `avx2` when this machine runs AVX2 code and `RAPQ_SIMD` is not `baseline`.
    public static let current: VectorUnit = {
        if let text = ProcessInfo_environment("RAPQ_SIMD"), text == "baseline" { return .baseline }
        return machineRunsAVX2 ? .avx2 : .baseline
    }()

    /// Whether the CPU has AVX2 and the operating system saves its registers: on Linux, the `avx2` flag of
    /// `/proc/cpuinfo` (the kernel drops it when it does not manage AVX state); on macOS, `hw.optional.avx2_0`.
    static let machineRunsAVX2: Bool = {
        #if arch(x86_64) && canImport(Glibc)
        guard let file = fopen("/proc/cpuinfo", "r") else { return false }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0, let line {
            let text = String(cString: line)
            guard text.hasPrefix("flags") else { continue }
            return text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).contains("avx2")
        }
        return false
        #elseif arch(x86_64) && canImport(Darwin)
        var value: Int32 = 0
        var size = MemoryLayout<Int32>.size
        return sysctlbyname("hw.optional.avx2_0", &value, &size, nil, 0) == 0 && value != 0
        #else
        return false
        #endif
    }()
}
