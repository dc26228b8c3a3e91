import DataIO
import Foundation
import Graph
import TensorKernels

/// Reads the elements of `TensorProto`s: from `raw_data` (little-endian), the typed fields, or an
/// external file, checking every size against the declared dimensions before allocating anything.
struct TensorDecoder {
    /// The largest element count RAPQ accepts for one tensor (2^31): a guard against corrupted or hostile
    /// dimensions that would otherwise make the importer allocate without bound.
    static let maxElementCount = 1 << 31

    /// Where external data files live (the model's directory); `nil` when the model came from memory.
    let externalDataDirectory: URL?

    /// The tensor's dimensions as `Int`s and their product, or an error if any is negative or the product
    /// exceeds `maxElementCount`.
    static func checkedShape(_ dims: [Int64], tensor: String) throws -> (shape: [Int], count: Int) {
        var count = 1
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        for d in dims {
            guard d >= 0 else {
                throw ONNXError.invalidDimensions(tensor: tensor, dims: dims, reason: "dimension \(d) is negative")
            }
            guard d <= Int64(maxElementCount) else {
                throw ONNXError.invalidDimensions(
                    tensor: tensor, dims: dims, reason: "dimension \(d) exceeds the limit of 2^31 elements per tensor")
            }
            shape.append(Int(d))
        }
        // Multiply with overflow checks; a zero dimension makes the tensor empty whatever the others are.
        if shape.contains(0) { return (shape, 0) }
        for d in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, product <= maxElementCount else {
                throw ONNXError.invalidDimensions(
                    tensor: tensor, dims: dims, reason: "they imply more than 2^31 elements, the limit per tensor")
            }
            count = product
        }
        return (shape, count)
    }

    /// A float32 tensor's shape and elements.
    func floatTensor(_ proto: Onnx_TensorProto) throws -> Tensor {
        let (shape, count) = try Self.checkedShape(proto.dims, tensor: proto.name)
        guard proto.dataType == Int32(Onnx_TensorProto.DataType.float.rawValue) else {
            throw ONNXError.unsupportedDataType(tensor: proto.name, dataType: proto.dataType, expected: "FLOAT (float32)")
        }
        if let bytes = try encodedBytes(of: proto, count: count, elementSize: 4) {
            return Tensor(shape: shape, data: Self.littleEndianValues(bytes, count: count) { Float(bitPattern: UInt32(littleEndian: $0)) })
        }
        guard proto.floatData.count == count else {
            throw ONNXError.dataSizeMismatch(tensor: proto.name, dims: proto.dims, expected: count,
                                             actual: proto.floatData.count, unit: "elements")
        }
        return Tensor(shape: shape, data: proto.floatData)
    }

    /// An int64 tensor's shape and elements (Reshape's target shape and similar constant operands).
    func int64Tensor(_ proto: Onnx_TensorProto) throws -> (shape: [Int], values: [Int64]) {
        let (shape, count) = try Self.checkedShape(proto.dims, tensor: proto.name)
        guard proto.dataType == Int32(Onnx_TensorProto.DataType.int64.rawValue) else {
            throw ONNXError.unsupportedDataType(tensor: proto.name, dataType: proto.dataType, expected: "INT64")
        }
        if let bytes = try encodedBytes(of: proto, count: count, elementSize: 8) {
            return (shape, Self.littleEndianValues(bytes, count: count) { Int64(littleEndian: $0) })
        }
        guard proto.int64Data.count == count else {
            throw ONNXError.dataSizeMismatch(tensor: proto.name, dims: proto.dims, expected: count,
                                             actual: proto.int64Data.count, unit: "elements")
        }
        return (shape, proto.int64Data)
    }

    /// Any numeric tensor (float, double, int64, int32, int8/uint8, bool) as a `KnownValue`, for evaluating
    /// shape arithmetic at import.
    func knownValue(_ proto: Onnx_TensorProto) throws -> KnownValue {
        typealias Kind = Onnx_TensorProto.DataType
        let (shape, count) = try Self.checkedShape(proto.dims, tensor: proto.name)
        switch Kind(rawValue: Int(proto.dataType)) {
        case .float?:
            return KnownValue(shape: shape, elements: try floatTensor(proto).data.map(Double.init), isFloat: true)
        case .int64?:
            return KnownValue(shape: shape, elements: try int64Tensor(proto).values.map(Double.init), isFloat: false)
        case .double?:
            if let bytes = try encodedBytes(of: proto, count: count, elementSize: 8) {
                return KnownValue(shape: shape, elements: Self.littleEndianValues(bytes, count: count) { Double(bitPattern: UInt64(littleEndian: $0)) }, isFloat: true)
            }
            guard proto.doubleData.count == count else {
                throw ONNXError.dataSizeMismatch(tensor: proto.name, dims: proto.dims, expected: count, actual: proto.doubleData.count, unit: "elements")
            }
            return KnownValue(shape: shape, elements: proto.doubleData, isFloat: true)
        case .int32?:
            if let bytes = try encodedBytes(of: proto, count: count, elementSize: 4) {
                return KnownValue(shape: shape, elements: Self.littleEndianValues(bytes, count: count) { Double(Int32(littleEndian: $0)) }, isFloat: false)
            }
            fallthrough
        case .int8?, .uint8?, .bool?, .int16?, .uint16?:
            let size = proto.dataType == Int32(Kind.int16.rawValue) || proto.dataType == Int32(Kind.uint16.rawValue) ? 2 : 1
            if proto.dataType != Int32(Kind.int32.rawValue), let bytes = try encodedBytes(of: proto, count: count, elementSize: size) {
                let signed = proto.dataType == Int32(Kind.int8.rawValue) || proto.dataType == Int32(Kind.int16.rawValue)
                let values: [Double] = (0..<count).map { i in
                    if size == 1 { return signed ? Double(Int8(bitPattern: bytes[bytes.startIndex + i])) : Double(bytes[bytes.startIndex + i]) }
                    let word = UInt16(bytes[bytes.startIndex + 2 * i]) | UInt16(bytes[bytes.startIndex + 2 * i + 1]) << 8
                    return signed ? Double(Int16(bitPattern: word)) : Double(word)
                }
                return KnownValue(shape: shape, elements: values, isFloat: false)
            }
            guard proto.int32Data.count == count else {
                throw ONNXError.dataSizeMismatch(tensor: proto.name, dims: proto.dims, expected: count, actual: proto.int32Data.count, unit: "elements")
            }
            return KnownValue(shape: shape, elements: proto.int32Data.map(Double.init), isFloat: false)
        default:
            throw ONNXError.unsupportedDataType(tensor: proto.name, dataType: proto.dataType,
                                               expected: "a numeric type (float, double, int64, int32, int16, int8, uint8, bool) for a constant")
        }
    }

    /// `count` fixed-width values decoded from little-endian `bytes` (already checked to hold exactly that
    /// many): a plain copy on little-endian hosts, `convert` applied to each raw word elsewhere.
    static func littleEndianValues<Word: FixedWidthInteger, Value>(
        _ bytes: Data, count: Int, _ convert: (Word) -> Value
    ) -> [Value] {
        precondition(bytes.count == count * MemoryLayout<Word>.size && MemoryLayout<Value>.size == MemoryLayout<Word>.size)
        return [Value](unsafeUninitializedCapacity: count) { buffer, initialized in
            bytes.withUnsafeBytes { raw in
                #if _endian(little)
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: raw)
                #else
                for i in 0..<count {
                    buffer.initializeElement(at: i, to: convert(raw.loadUnaligned(fromByteOffset: i * MemoryLayout<Word>.size, as: Word.self)))
                }
                #endif
            }
            initialized = count
        }
    }

    /// The little-endian bytes of a tensor stored in `raw_data` or an external file, checked to be exactly
    /// `count * elementSize` long; `nil` when the elements are in a typed field instead.
    private func encodedBytes(of proto: Onnx_TensorProto, count: Int, elementSize: Int) throws -> Data? {
        let expected = count * elementSize   // cannot overflow: count <= 2^31, elementSize <= 8
        if proto.dataLocation == .external {
            return try externalBytes(of: proto, expected: expected)
        }
        guard proto.hasRawData else { return nil }
        guard proto.rawData.count == expected else {
            throw ONNXError.dataSizeMismatch(tensor: proto.name, dims: proto.dims, expected: expected,
                                             actual: proto.rawData.count, unit: "bytes")
        }
        return proto.rawData
    }

    /// Reads `expected` bytes of an external tensor after checking the location stays inside the model's
    /// directory and the file holds that many bytes at the given offset.
    private func externalBytes(of proto: Onnx_TensorProto, expected: Int) throws -> Data {
        let name = proto.name
        var entries: [String: String] = [:]
        for entry in proto.externalData { entries[entry.key] = entry.value }
        guard let location = entries["location"], !location.isEmpty else {
            throw ONNXError.externalData(tensor: name, reason: "its external_data has no 'location'; the file is corrupted")
        }
        guard let directory = externalDataDirectory else {
            throw ONNXError.externalData(
                tensor: name, reason: "the model was loaded from memory, so '\(location)' cannot be resolved; "
                    + "load it with ONNXImporter.load(contentsOf:) or pass externalDataDirectory")
        }
        let components = location.split(whereSeparator: { $0 == "/" || $0 == "\\" })
        guard !location.hasPrefix("/"), !location.hasPrefix("\\"), !location.contains(":"),
              !components.contains(where: { $0 == ".." }) else {
            throw ONNXError.externalData(
                tensor: name, reason: "location '\(location)' leaves the model's directory; external data must be "
                    + "a relative path inside it")
        }
        let base = directory.standardizedFileURL.resolvingSymlinksInPath()
        let file = base.appendingPathComponent(components.joined(separator: "/")).standardizedFileURL.resolvingSymlinksInPath()
        guard file.path.hasPrefix(base.path.hasSuffix("/") ? base.path : base.path + "/") else {
            throw ONNXError.externalData(
                tensor: name, reason: "location '\(location)' resolves to '\(file.path)', outside the model's directory")
        }
        func number(_ key: String) throws -> Int? {
            guard let text = entries[key] else { return nil }
            guard let value = Int(text), value >= 0 else {
                throw ONNXError.externalData(tensor: name, reason: "'\(key)' is '\(text)', not a byte count")
            }
            return value
        }
        let offset = try number("offset") ?? 0
        let size: Int
        do {
            size = try RegularFile.size(of: file)
        } catch DataError.notARegularFile(_, let kind) {
            throw ONNXError.externalData(tensor: name, reason: "'\(location)' is \(kind), not a data file")
        } catch {
            throw ONNXError.externalData(
                tensor: name, reason: "file '\(location)' is missing next to the model (\(file.path)); copy it there")
        }
        let length = try number("length") ?? max(0, size - offset)
        guard length == expected else {
            throw ONNXError.dataSizeMismatch(tensor: name, dims: proto.dims, expected: expected, actual: length, unit: "bytes")
        }
        guard offset <= size, length <= size - offset else {
            throw ONNXError.externalData(
                tensor: name, reason: "file '\(location)' has \(size) bytes, fewer than offset \(offset) + length \(length); it is truncated")
        }
        do {
            return try RegularFile.contents(of: file, offset: offset, length: length)
        } catch {
            throw ONNXError.externalData(tensor: name, reason: "reading '\(location)' failed: \(error)")
        }
    }
}
