import Foundation
import TensorKernels

/// Element types of `.npy` arrays this tool reads.
public enum NumpyElementType: String, Sendable {
    case float32 = "<f4", float64 = "<f8", uint8 = "|u1", int8 = "|i1", int32 = "<i4", int64 = "<i8"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .float32, .int32: return 4
        case .float64, .int64: return 8
        case .uint8, .int8: return 1
        }
    }
}

/// The header of a `.npy` array: its shape, element type, and where its elements start.
public struct NumpyHeader: Sendable, Equatable {
    /// Dimensions, outermost first.
    public var shape: [Int]
    /// The element type stored in the file.
    public var elementType: NumpyElementType
    /// Byte offset of the first element.
    public var payloadOffset: Int
}

/// Reads and writes NumPy `.npy` files (format versions 1-3, little-endian, C order).
public enum NumpyFile {
    /// Reads a numeric array as a Float32 tensor, rejecting NaN and infinities.
    public static func readTensor(contentsOf url: URL) throws -> Tensor {
        try tensor(from: load(url), path: url.path)
    }

    /// The Float32 tensor `.npy` bytes hold, rejecting NaN and infinities; `path` names them in errors.
    public static func tensor(from bytes: Data, path: String) throws -> Tensor {
        let header = try parseHeader(bytes, path: path)
        var data = [Float](repeating: 0, count: header.shape.shapeProduct)
        decode(bytes, header) { i, v in data[i] = Float(v) }
        if let bad = data.firstIndex(where: { !$0.isFinite }) { throw DataError.nonFinite(path: path, index: bad) }
        return Tensor(shape: header.shape, data: data)
    }

    /// Reads an integer array (labels, class indices); float arrays must hold whole numbers.
    public static func readIntegers(contentsOf url: URL) throws -> (shape: [Int], values: [Int64]) {
        let bytes = try load(url)
        let header = try parseHeader(bytes, path: url.path)
        var values = [Int64](repeating: 0, count: header.shape.shapeProduct)
        var bad: Int?
        decode(bytes, header) { i, v in
            if v.rounded() == v, abs(v) < 9e18 { values[i] = Int64(v) } else if bad == nil { bad = i }
        }
        if let bad { throw DataError.malformedNumpy(path: url.path, reason: "element \(bad) is not a whole number; labels must be integers") }
        return (header.shape, values)
    }

    private static func load(_ url: URL) throws -> Data {
        let bytes = try RegularFile.contents(of: url)
        if bytes.isEmpty { throw DataError.malformedNumpy(path: url.path, reason: "the file is empty (0 bytes)") }
        return bytes
    }

    /// Calls `store(i, value)` for every element, widening it to Double.
    private static func decode(_ bytes: Data, _ header: NumpyHeader, _ store: (Int, Double) -> Void) {
        let count = header.shape.shapeProduct
        bytes.withUnsafeBytes { raw in
            guard count > 0 else { return }
            let base = raw.baseAddress! + header.payloadOffset
            switch header.elementType {
            case .float32: for i in 0..<count { store(i, Double(Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))))) }
            case .float64: for i in 0..<count { store(i, Double(bitPattern: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
            case .uint8: for i in 0..<count { store(i, Double(base.load(fromByteOffset: i, as: UInt8.self))) }
            case .int8: for i in 0..<count { store(i, Double(base.load(fromByteOffset: i, as: Int8.self))) }
            case .int32: for i in 0..<count { store(i, Double(Int32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))) }
            case .int64: for i in 0..<count { store(i, Double(Int64(littleEndian: base.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))) }
            }
        }
    }

    /// Parses and checks the header of `.npy` bytes; `path` is only used in error messages.
    public static func parseHeader(_ data: Data, path: String) throws -> NumpyHeader {
        let bytes = [UInt8](data.prefix(1 << 20))
        let fileSize = data.count
        func fail(_ reason: String) -> DataError { .malformedNumpy(path: path, reason: reason) }
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1...5]) == Array("NUMPY".utf8) else { throw fail("missing the \\x93NUMPY magic") }
        let major = bytes[6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1: headerLength = Int(bytes[8]) | Int(bytes[9]) << 8; headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw fail("truncated header") }
            headerLength = (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }; headerStart = 12
        default: throw fail("unknown format version \(major)")
        }
        guard headerStart + headerLength <= bytes.count,
              let header = String(bytes: bytes[headerStart..<headerStart + headerLength], encoding: major == 3 ? .utf8 : .isoLatin1)
        else { throw fail("truncated header") }
        let dictionary: NumpyHeaderDictionary
        do {
            dictionary = try NumpyHeaderDictionary(parsing: header)
        } catch let failure as NumpyHeaderDictionary.Failure {
            throw fail(failure.reason)
        }
        let descr = dictionary.descr, shape = dictionary.shape
        let normalized = descr == "<u1" || descr == "u1" ? "|u1" : (descr == "<i1" || descr == "i1" ? "|i1" : descr)
        guard let type = NumpyElementType(rawValue: normalized) else { throw DataError.unsupportedElementType(path: path, descr: descr) }
        if dictionary.fortranOrder { throw fail("Fortran-ordered arrays are not supported; save with numpy.ascontiguousarray") }
        let (count, overflow) = shape.reduce((1, false)) { acc, d in
            let (p, o) = acc.0.multipliedReportingOverflow(by: d); return (p, acc.1 || o)
        }
        let payload = headerStart + headerLength
        let (bytesNeeded, tooMany) = count.multipliedReportingOverflow(by: type.size)
        guard !overflow, !tooMany, fileSize - payload == bytesNeeded else {
            throw fail("shape \(shape) needs \(overflow || tooMany ? "more than 2^63" : String(bytesNeeded)) bytes of data but the file has \(fileSize - payload)")
        }
        return NumpyHeader(shape: shape, elementType: type, payloadOffset: payload)
    }

    /// The `.npy` bytes of a float32 tensor.
    public static func encode(_ tensor: Tensor) -> Data {
        encode(shape: tensor.shape, descr: NumpyElementType.float32.rawValue) { out in
            for v in tensor.data { withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
        }
    }

    /// The `.npy` bytes of an int64 array (class indices, labels).
    public static func encode(int64 values: [Int64], shape: [Int]) -> Data {
        encode(shape: shape, descr: NumpyElementType.int64.rawValue) { out in
            for v in values { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        }
    }

    /// Writes a float32 tensor to `url` atomically.
    public static func write(_ tensor: Tensor, to url: URL) throws {
        try AtomicFile.write(encode(tensor), to: url)
    }

    private static func encode(shape: [Int], descr: String, payload: (inout Data) -> Void) -> Data {
        let dims = shape.count == 1 ? "\(shape[0])," : shape.map(String.init).joined(separator: ", ")
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(dims)), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let length = UInt16(header.utf8.count)
        out.append(contentsOf: [UInt8(length & 0xff), UInt8(length >> 8)])
        out.append(contentsOf: Array(header.utf8))
        payload(&out)
        return out
    }
}
