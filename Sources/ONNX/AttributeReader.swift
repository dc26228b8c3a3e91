import Foundation
import Graph
import TensorKernels

/// Typed access to one node's attributes, with errors that name the node, operator and attribute.
struct AttributeReader {
    /// The node's display name, for messages.
    let node: String
    /// The node's operator type, for messages.
    let op: String
    /// The attributes by name.
    let byName: [String: Onnx_AttributeProto]

    /// A reader over `proto`'s attributes; rejects any attribute not in `allowed` (unknown attributes might
    /// change the operator's meaning, so they are never silently ignored).
    init(_ proto: Onnx_NodeProto, name: String, allowed: Set<String>) throws {
        node = name
        op = proto.opType
        var map: [String: Onnx_AttributeProto] = [:]
        for attribute in proto.attribute {
            guard allowed.contains(attribute.name) else {
                throw ONNXError.unsupportedAttribute(
                    node: name, op: proto.opType, attribute: attribute.name, value: Self.render(attribute),
                    reason: "\(proto.opType) has no such attribute in the supported opsets (known: "
                        + "\(allowed.sorted().joined(separator: ", ")))")
            }
            if !attribute.refAttrName.isEmpty {
                throw ONNXError.unsupportedAttribute(
                    node: name, op: proto.opType, attribute: attribute.name, value: "@\(attribute.refAttrName)",
                    reason: "attribute references belong inside ONNX functions, not in a model graph")
            }
            map[attribute.name] = attribute
        }
        byName = map
    }

    /// Whether the attribute is present.
    func has(_ name: String) -> Bool { byName[name] != nil }

    /// An INT attribute, or `defaultValue` when absent.
    func int(_ name: String, default defaultValue: Int) throws -> Int {
        guard let a = byName[name] else { return defaultValue }
        guard a.type == .int || (a.type == .undefined && a.hasI) else { throw wrongType(a, expected: "INT") }
        guard let value = Int(exactly: a.i) else { throw unsupported(a, "the value does not fit in an Int") }
        return value
    }

    /// An INT attribute that must be 0 or 1.
    func bool(_ name: String, default defaultValue: Bool) throws -> Bool {
        let value = try int(name, default: defaultValue ? 1 : 0)
        guard value == 0 || value == 1 else { throw unsupported(byName[name]!, "expected 0 or 1") }
        return value == 1
    }

    /// An INTS attribute, or `nil` when absent.
    func ints(_ name: String) throws -> [Int]? {
        guard let a = byName[name] else { return nil }
        guard a.type == .ints || (a.type == .undefined && !a.ints.isEmpty) else { throw wrongType(a, expected: "INTS") }
        let limit = Int64(TensorDecoder.maxElementCount)
        return try a.ints.map { v in
            guard v >= -limit, v <= limit else { throw unsupported(a, "\(v) is out of range") }
            return Int(v)
        }
    }

    /// A FLOAT attribute, or `defaultValue` when absent; NaN is refused, and infinities unless
    /// `allowInfinite` (Clip's bounds).
    func float(_ name: String, default defaultValue: Float, allowInfinite: Bool = false) throws -> Float {
        guard let a = byName[name] else { return defaultValue }
        guard a.type == .float || (a.type == .undefined && a.hasF) else { throw wrongType(a, expected: "FLOAT") }
        guard !a.f.isNaN, allowInfinite || a.f.isFinite else { throw unsupported(a, "must be a finite number") }
        return a.f
    }

    /// A STRING attribute decoded as UTF-8, or `defaultValue` when absent.
    func string(_ name: String, default defaultValue: String) throws -> String {
        guard let a = byName[name] else { return defaultValue }
        guard a.type == .string || (a.type == .undefined && a.hasS) else { throw wrongType(a, expected: "STRING") }
        guard let text = String(data: a.s, encoding: .utf8) else { throw unsupported(a, "the string is not UTF-8") }
        return text
    }

    /// An error for an attribute whose value the IR cannot represent.
    func unsupported(_ a: Onnx_AttributeProto, _ reason: String) -> ONNXError {
        .unsupportedAttribute(node: node, op: op, attribute: a.name, value: Self.render(a), reason: reason)
    }

    /// An error for an attribute of the wrong type.
    func unsupported(_ name: String, value: String, _ reason: String) -> ONNXError {
        .unsupportedAttribute(node: node, op: op, attribute: name, value: value, reason: reason)
    }

    private func wrongType(_ a: Onnx_AttributeProto, expected: String) -> ONNXError {
        unsupported(a, "expected an attribute of type \(expected), found \("\(a.type)".uppercased())")
    }

    /// A short rendering of an attribute's value for messages.
    static func render(_ a: Onnx_AttributeProto) -> String {
        switch a.type {
        case .float: return "\(a.f)"
        case .int: return "\(a.i)"
        case .string: return "'\(String(decoding: a.s, as: UTF8.self))'"
        case .floats: return "\(a.floats)"
        case .ints: return "\(a.ints)"
        case .tensor: return "a tensor of dims \(a.t.dims)"
        default:
            if a.hasI { return "\(a.i)" }
            if a.hasF { return "\(a.f)" }
            if !a.ints.isEmpty { return "\(a.ints)" }
            return "a value of type \("\(a.type)".uppercased())"
        }
    }

    /// The 2-D window geometry of a Conv or pooling node (kernel_shape, strides, dilations, pads, auto_pad,
    /// ceil_mode); `kernel` supplies the kernel size when `kernel_shape` is absent (Conv reads it from the
    /// weight). A 1-D or 3-D window is an unsupported attribute.
    func window(kernel inferred: [Int]?, allowCeilMode: Bool) throws -> WindowGeometry {
        let spatial = "RAPQ supports only 2-D convolution and pooling over NCHW tensors"
        func pair(_ name: String, default d: [Int]) throws -> (Int, Int) {
            let values = try ints(name) ?? d
            guard values.count == 2 else {
                throw unsupported(name, value: "\(values)", "\(values.count)-D window; \(spatial)")
            }
            guard values.allSatisfy({ $0 > 0 }) else { throw unsupported(name, value: "\(values)", "values must be positive") }
            guard values.allSatisfy({ $0 <= ShapeLimits.maximumElements }) else { throw unsupported(name, value: "\(values)", "values must be at most 2^31") }
            return (values[0], values[1])
        }
        guard let kernelShape = try ints("kernel_shape") ?? inferred else {
            throw ONNXError.missingAttribute(node: node, op: op, attribute: "kernel_shape")
        }
        guard kernelShape.count == 2 else {
            throw unsupported("kernel_shape", value: "\(kernelShape)", "\(kernelShape.count)-D kernel; \(spatial)")
        }
        let kernel = try pair("kernel_shape", default: kernelShape)
        let strides = try pair("strides", default: [1, 1])
        let dilations = try pair("dilations", default: [1, 1])
        let pads = try ints("pads") ?? [0, 0, 0, 0]
        guard pads.count == 4 else {
            throw unsupported("pads", value: "\(pads)", "expected 4 values [top, left, bottom, right]; \(spatial)")
        }
        guard pads.allSatisfy({ $0 >= 0 }) else { throw unsupported("pads", value: "\(pads)", "negative padding") }
        // Bounded so that window arithmetic on dimensions of at most 2^31 cannot overflow.
        guard pads.allSatisfy({ $0 <= ShapeLimits.maximumElements }) else { throw unsupported("pads", value: "\(pads)", "values must be at most 2^31") }
        let autoPadText = try string("auto_pad", default: "NOTSET")
        guard let autoPad = AutoPad(rawValue: autoPadText) else {
            throw unsupported("auto_pad", value: "'\(autoPadText)'", "expected NOTSET, SAME_UPPER, SAME_LOWER or VALID")
        }
        let ceilMode = allowCeilMode ? try bool("ceil_mode", default: false) : false
        return WindowGeometry(kernel: kernel, strides: strides, dilations: dilations,
                              pads: (pads[0], pads[1], pads[2], pads[3]), autoPad: autoPad,
                              ceilMode: ceilMode)
    }
}
