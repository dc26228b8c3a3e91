/// The presets, each with the exact semantics of the pipeline it is named after.
extension Preprocessing {
    /// Names accepted by `preset(named:)`.
    public static let presetNames = ["torchvision", "efficientnet-lite", "inception", "caffe", "raw"]

    /// torchvision's ImageNet evaluation transform: Resize(256) (PIL bilinear, antialiased), CenterCrop(224),
    /// ToTensor (x / 255), Normalize(mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)); RGB, NCHW.
    public static let torchvision = Preprocessing(resize: 256, crop: 224, interpolation: .bilinear, scale: 255,
                                                  mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])

    /// EfficientNet-Lite (TF reference, and this project's tools/prepare_photos.py): shorter side 256 with
    /// PIL bicubic (a = -0.5, antialiased), centre crop 224, (x - 127) / 128 on 0...255 RGB, NCHW.
    public static let efficientNetLite = Preprocessing(resize: 256, crop: 224, interpolation: .bicubic, scale: 1,
                                                       mean: [127, 127, 127], std: [128, 128, 128])

    /// Inception (v3, Keras `inception_v3.preprocess_input`, mode "tf"): (x - 127.5) / 127.5, i.e. [-1, 1],
    /// on a 299 x 299 RGB input. Keras leaves the resize to the caller; TF-slim's evaluation crops the central
    /// 87.5% and resizes to 299, which is a shorter side of 299 / 0.875 = 341.7, and torchvision's Inception v3
    /// weights use Resize(342) + CenterCrop(299) bilinear: so shorter side 342 (PIL bilinear, antialiased),
    /// centre crop 299. Keras computes x / 127.5 - 1, which differs from this by at most one float rounding.
    public static let inception = Preprocessing(resize: 342, crop: 299, interpolation: .bilinear, scale: 1,
                                                mean: [127.5, 127.5, 127.5], std: [127.5, 127.5, 127.5])

    /// Caffe (Keras `preprocess_input` mode "caffe", VGG/ResNet-50 Caffe weights): BGR, minus the ImageNet
    /// mean (103.939, 116.779, 123.68) in BGR order, no scaling; shorter side 256 (bilinear), centre crop 224.
    public static let caffe = Preprocessing(resize: 256, crop: 224, interpolation: .bilinear, scale: 1,
                                            mean: [103.939, 116.779, 123.68], std: [1, 1, 1], channels: .bgr)

    /// No resize, no crop, 0...255 RGB, NCHW: a starting point for explicit flags.
    public static let raw = Preprocessing()

    /// The preset called `name` (see `presetNames`).
    public static func preset(named name: String) throws -> Preprocessing {
        switch name.lowercased() {
        case "torchvision": return .torchvision
        case "efficientnet-lite", "efficientnet_lite": return .efficientNetLite
        case "inception": return .inception
        case "caffe": return .caffe
        case "raw", "none": return .raw
        default: throw ImageError.unknownPreset(name: name)
        }
    }
}
