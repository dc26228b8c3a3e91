/// How padding is chosen for a convolution or pooling window (ONNX `auto_pad`).
public enum AutoPad: String, Equatable, Sendable {
    /// Use the explicit `pads`.
    case notSet = "NOTSET"
    /// Output size `ceil(in / stride)`; an odd total padding puts the extra row/column at the end.
    case sameUpper = "SAME_UPPER"
    /// Output size `ceil(in / stride)`; an odd total padding puts the extra row/column at the start.
    case sameLower = "SAME_LOWER"
    /// No padding.
    case valid = "VALID"
}

/// The geometry of a 2-D sliding window: convolution or pooling over NCHW tensors.
public struct WindowGeometry: Equatable, Sendable {
    /// Window height and width.
    public var kernel: (h: Int, w: Int)
    /// Step between windows, vertical and horizontal.
    public var strides: (h: Int, w: Int)
    /// Spacing between window taps (1 = dense).
    public var dilations: (h: Int, w: Int)
    /// Explicit padding: top, left, bottom, right (ONNX order `[h_begin, w_begin, h_end, w_end]`).
    public var pads: (top: Int, left: Int, bottom: Int, right: Int)
    /// Automatic padding; when not `.notSet` it overrides `pads`.
    public var autoPad: AutoPad
    /// Pooling only: output size uses `ceil` instead of `floor`.
    public var ceilMode: Bool

    /// A window with the given geometry; defaults are stride 1, dilation 1, no padding.
    public init(kernel: (h: Int, w: Int), strides: (h: Int, w: Int) = (1, 1), dilations: (h: Int, w: Int) = (1, 1),
                pads: (top: Int, left: Int, bottom: Int, right: Int) = (0, 0, 0, 0), autoPad: AutoPad = .notSet,
                ceilMode: Bool = false) {
        self.kernel = kernel
        self.strides = strides
        self.dilations = dilations
        self.pads = pads
        self.autoPad = autoPad
        self.ceilMode = ceilMode
    }

    public static func == (a: WindowGeometry, b: WindowGeometry) -> Bool {
        a.kernel == b.kernel && a.strides == b.strides && a.dilations == b.dilations && a.pads == b.pads
            && a.autoPad == b.autoPad && a.ceilMode == b.ceilMode
    }

    /// The padding actually applied to an input of height `h` and width `w` (resolves `autoPad`).
    public func resolvedPads(height h: Int, width w: Int) -> (top: Int, left: Int, bottom: Int, right: Int) {
        switch autoPad {
        case .notSet: return pads
        case .valid: return (0, 0, 0, 0)
        case .sameUpper, .sameLower:
            func split(_ size: Int, _ k: Int, _ s: Int, _ d: Int) -> (Int, Int) {
                let out = (size + s - 1) / s
                let total = Swift.max(0, (out - 1) * s + (k - 1) * d + 1 - size)
                let small = total / 2
                return autoPad == .sameUpper ? (small, total - small) : (total - small, small)
            }
            let (t, b) = split(h, kernel.h, strides.h, dilations.h)
            let (l, r) = split(w, kernel.w, strides.w, dilations.w)
            return (t, l, b, r)
        }
    }

    /// The output height and width for an input of height `h` and width `w`.
    public func outputSize(height h: Int, width w: Int) -> (h: Int, w: Int) {
        let p = resolvedPads(height: h, width: w)
        func size(_ n: Int, _ before: Int, _ after: Int, _ k: Int, _ s: Int, _ d: Int) -> Int {
            let span = n + before + after - (d * (k - 1) + 1)
            if span < 0 { return 0 }
            if ceilMode {
                var out = (span + s - 1) / s + 1
                // ONNX/PyTorch rule: the last window must start inside the input or the leading padding.
                if (out - 1) * s >= n + before { out -= 1 }
                return out
            }
            return span / s + 1
        }
        return (size(h, p.top, p.bottom, kernel.h, strides.h, dilations.h),
                size(w, p.left, p.right, kernel.w, strides.w, dilations.w))
    }
}

/// A 2-D convolution's parameters beyond its weights: window geometry and channel groups.
public struct Conv2DParameters: Equatable, Sendable {
    /// Window geometry (kernel size must match the weight tensor's last two dimensions).
    public var window: WindowGeometry
    /// Number of channel groups; equal to the input channel count for a depthwise convolution.
    public var groups: Int

    /// Convolution parameters from a window geometry and group count.
    public init(window: WindowGeometry, groups: Int = 1) {
        self.window = window
        self.groups = groups
    }
}
