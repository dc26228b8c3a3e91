#!/usr/bin/env python3
"""Small hand-built ONNX graphs of the patterns standard CNNs use, with onnxruntime's outputs.

    make_graph_patterns.py OUT_DIR

For each pattern NAME writes NAME.onnx, NAME-input.npy (seeded) and NAME-ort.npy (onnxruntime's output on
the input), for Tests/EndToEndTests/GraphPatternTests.swift:

  se_block          Conv, Relu, squeeze-excitation (GAP, 1x1 convs, HardSigmoid, Mul), classifier
  hardswish_block   inverted residual with HardSwish and a residual Add
  silu_block        Conv, SiLU written as x * Sigmoid(x) (EfficientNet)
  inception         parallel 1x1, 3x3 and pooled branches joined by Concat
  dense_bn          DenseNet: Concat of pooled and new features, then BatchNormalization, Relu and Conv
  channel_shuffle   ShuffleNetV2: Slice halves, Concat, Reshape/Transpose/Reshape computed by shape arithmetic
  identity_bias     two convolutions whose equal biases are shared through an Identity of an initializer
  batch1_reshape    exported with batch 1: the classifier input is Reshape(x, [1, -1])
  reduce_mean       ReduceMean over H and W (keepdims 0) instead of GlobalAveragePool
  opset9            opset 9: Clip bounds and Unsqueeze axes as attributes, Sum of three tensors
  softmax_output    opset 11: the classifier ends in Softmax (Caffe2 and ONNX-zoo files)
  lrn               AlexNet/GoogLeNet (Caffe): LRN across channels after a Relu (no integer kernel: float only)
  strided_view      PyTorch's dynamo export at batch 1 (ConvNeXt's head): ReduceMean keeping H and W, Reshape to
                    [-1], and an as_strided view written as Gather of the flat tensor at 0..C-1 in shape [1, C, 1, 1]
  gap_logits        SqueezeNet's head: the logits are a global average of a 1x1 convolution's output
  convnext_block    ConvNeXt as torch exports it (opset 17): LayerNorm2d as Transpose/LayerNormalization/
                    Transpose, a block's MLP as MatMul by transposed weights on NHWC tensors with GELU written
                    as Div/Erf/Add/Mul/Mul, a layer scale Mul and a residual Add, a LayerNorm2d head
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(20261204)


def weight(name, shape, scale=None):
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    scale = scale if scale is not None else 1.0 / np.sqrt(fan_in)
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def vector(name, n, center=0.0, spread=0.1):
    return numpy_helper.from_array((center + spread * rng.standard_normal(n)).astype(np.float32), name)


def conv(x, out, w, b=None, k=3, stride=1, group=1, pad=None):
    pad = k // 2 if pad is None else pad
    inputs = [x, w] + ([b] if b else [])
    return helper.make_node("Conv", inputs, [out], name=out, kernel_shape=[k, k], strides=[stride, stride],
                            pads=[pad] * 4, group=group)


def classifier(x, channels, classes, nodes, inits, prefix="head"):
    nodes += [helper.make_node("GlobalAveragePool", [x], [f"{prefix}_gap"], name=f"{prefix}_gap"),
              helper.make_node("Flatten", [f"{prefix}_gap"], [f"{prefix}_flat"], name=f"{prefix}_flat", axis=1),
              helper.make_node("Gemm", [f"{prefix}_flat", f"{prefix}_w", f"{prefix}_b"], ["logits"], name=f"{prefix}_fc", transB=1)]
    inits += [weight(f"{prefix}_w", [classes, channels]), vector(f"{prefix}_b", classes)]


def model(nodes, inits, opset=13, batch=None, size=8, channels=3):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch if batch else "N", channels, size, size])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch if batch else "N", 5])
    graph = helper.make_graph(nodes, "pattern", [x], [y], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7 if opset >= 13 else 4
    onnx.checker.check_model(m)
    return m


def se_block():
    n, i = [], [weight("w1", [8, 3, 3, 3]), vector("b1", 8), weight("w2", [4, 8, 1, 1]), vector("b2", 4),
                weight("w3", [8, 4, 1, 1]), vector("b3", 8), weight("w4", [8, 8, 3, 3]), vector("b4", 8)]
    n += [conv("x", "c1", "w1", "b1"), helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
          helper.make_node("GlobalAveragePool", ["r1"], ["g"], name="se_gap"),
          conv("g", "s1", "w2", "b2", k=1), helper.make_node("Relu", ["s1"], ["s1r"], name="s1r"),
          conv("s1r", "s2", "w3", "b3", k=1),
          helper.make_node("HardSigmoid", ["s2"], ["gate"], name="gate", alpha=1.0 / 6, beta=0.5),
          helper.make_node("Mul", ["r1", "gate"], ["scaled"], name="scale"),
          conv("scaled", "c4", "w4", "b4"), helper.make_node("Relu", ["c4"], ["r4"], name="r4")]
    classifier("r4", 8, 5, n, i)
    return model(n, i)


def hardswish_block():
    n, i = [], [weight("w1", [8, 3, 3, 3]), vector("b1", 8), weight("we", [16, 8, 1, 1]), vector("be", 16),
                weight("wd", [16, 1, 3, 3], 0.5), vector("bd", 16), weight("wp", [8, 16, 1, 1]), vector("bp", 8)]
    n += [conv("x", "c1", "w1", "b1"), helper.make_node("HardSwish", ["c1"], ["h1"], name="h1"),
          conv("h1", "e", "we", "be", k=1), helper.make_node("HardSwish", ["e"], ["eh"], name="eh"),
          conv("eh", "d", "wd", "bd", group=16), helper.make_node("HardSwish", ["d"], ["dh"], name="dh"),
          conv("dh", "p", "wp", "bp", k=1), helper.make_node("Add", ["p", "h1"], ["res"], name="res")]
    classifier("res", 8, 5, n, i)
    return model(n, i, opset=14)


def silu_block():
    n, i = [], [weight("w1", [8, 3, 3, 3]), vector("b1", 8), weight("w2", [8, 8, 3, 3]), vector("b2", 8)]
    n += [conv("x", "c1", "w1", "b1"), helper.make_node("Sigmoid", ["c1"], ["sg"], name="sg"),
          helper.make_node("Mul", ["c1", "sg"], ["silu"], name="silu"), conv("silu", "c2", "w2", "b2"),
          helper.make_node("Relu", ["c2"], ["r2"], name="r2")]
    classifier("r2", 8, 5, n, i)
    return model(n, i)


def inception():
    n, i = [], [weight("w0", [8, 3, 3, 3]), vector("b0", 8), weight("wa", [4, 8, 1, 1]), vector("ba", 4),
                weight("wb", [6, 8, 3, 3]), vector("bb", 6), weight("wc", [2, 8, 1, 1]), vector("bc", 2)]
    n += [conv("x", "c0", "w0", "b0"), helper.make_node("Relu", ["c0"], ["r0"], name="r0"),
          conv("r0", "a", "wa", "ba", k=1), helper.make_node("Relu", ["a"], ["ar"], name="ar"),
          conv("r0", "b", "wb", "bb"), helper.make_node("Relu", ["b"], ["br"], name="br"),
          helper.make_node("MaxPool", ["r0"], ["mp"], name="mp", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
          conv("mp", "c", "wc", "bc", k=1), helper.make_node("Relu", ["c"], ["cr"], name="cr"),
          helper.make_node("Concat", ["ar", "br", "cr"], ["cat"], name="cat", axis=1)]
    classifier("cat", 12, 5, n, i)
    return model(n, i)


def dense_bn():
    n, i = [], [weight("w0", [8, 3, 3, 3]), vector("b0", 8), weight("w1", [4, 8, 3, 3]), vector("b1", 4),
                vector("g", 12, 1.0, 0.2), vector("beta", 12), vector("mean", 12),
                numpy_helper.from_array((0.5 + rng.random(12)).astype(np.float32), "var"),
                weight("w2", [6, 12, 1, 1]), vector("b2", 6)]
    n += [conv("x", "c0", "w0", "b0"), helper.make_node("Relu", ["c0"], ["r0"], name="r0"),
          conv("r0", "c1", "w1", "b1"), helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
          helper.make_node("AveragePool", ["r0"], ["p0"], name="pool0", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
          helper.make_node("Concat", ["p0", "r1"], ["cat"], name="cat", axis=1),
          helper.make_node("BatchNormalization", ["cat", "g", "beta", "mean", "var"], ["bn"], name="bn", epsilon=1e-5),
          helper.make_node("Relu", ["bn"], ["bnr"], name="bnr"), conv("bnr", "c2", "w2", "b2", k=1),
          helper.make_node("Relu", ["c2"], ["r2"], name="r2")]
    classifier("r2", 6, 5, n, i)
    return model(n, i)


def channel_shuffle():
    def const(name, values):
        return numpy_helper.from_array(np.array(values, dtype=np.int64), name)
    n, i = [], [weight("w0", [8, 3, 3, 3]), vector("b0", 8), weight("w1", [4, 4, 1, 1]), vector("b1", 4),
                const("zero", [0]), const("two", [2]), const("four", [4]), const("eight", [8]),
                const("axis1", [1]), const("minus1", [-1]), const("idx0", 0), const("idx1", 1), const("idx2", 2),
                const("idx3", 3), const("half_div", 2)]
    n += [conv("x", "c0", "w0", "b0"), helper.make_node("Relu", ["c0"], ["r0"], name="r0"),
          # chunk(2, dim=1): split points from the channel count, as torch.onnx writes them
          helper.make_node("Shape", ["r0"], ["shp"], name="shape"),
          helper.make_node("Gather", ["shp", "idx1"], ["ch"], name="gather_c", axis=0),
          helper.make_node("Div", ["ch", "half_div"], ["half"], name="half"),
          helper.make_node("Unsqueeze", ["half", "zero"], ["half1"], name="half1"),
          helper.make_node("Slice", ["r0", "zero", "half1", "axis1"], ["lo"], name="slice_lo"),
          helper.make_node("Slice", ["r0", "half1", "eight", "axis1"], ["hi"], name="slice_hi"),
          conv("hi", "h1", "w1", "b1", k=1), helper.make_node("Relu", ["h1"], ["h1r"], name="h1r"),
          helper.make_node("Concat", ["lo", "h1r"], ["cat"], name="cat", axis=1),
          # channel shuffle with the batch, height and width read from the tensor
          helper.make_node("Shape", ["cat"], ["s2"], name="shape2"),
          helper.make_node("Gather", ["s2", "idx0"], ["nb"], name="gather_n", axis=0),
          helper.make_node("Gather", ["s2", "idx2"], ["hh"], name="gather_h", axis=0),
          helper.make_node("Gather", ["s2", "idx3"], ["ww"], name="gather_w", axis=0),
          helper.make_node("Unsqueeze", ["nb", "zero"], ["nb1"], name="nb1"),
          helper.make_node("Unsqueeze", ["hh", "zero"], ["hh1"], name="hh1"),
          helper.make_node("Unsqueeze", ["ww", "zero"], ["ww1"], name="ww1"),
          helper.make_node("Concat", ["nb1", "two", "four", "hh1", "ww1"], ["shape5"], name="shape5", axis=0),
          helper.make_node("Reshape", ["cat", "shape5"], ["g5"], name="group"),
          helper.make_node("Transpose", ["g5"], ["t5"], name="shuffle", perm=[0, 2, 1, 3, 4]),
          helper.make_node("Concat", ["nb1", "minus1", "hh1", "ww1"], ["shape4"], name="shape4", axis=0),
          helper.make_node("Reshape", ["t5", "shape4"], ["shuffled"], name="ungroup")]
    classifier("shuffled", 8, 5, n, i)
    return model(n, i)


def identity_bias():
    n, i = [], [weight("w1", [8, 3, 3, 3]), numpy_helper.from_array(np.zeros(8, np.float32), "zeros"),
                weight("w2", [8, 8, 3, 3])]
    n += [helper.make_node("Identity", ["zeros"], ["bias_a"], name="Identity_0"),
          helper.make_node("Identity", ["zeros"], ["bias_b"], name="Identity_1"),
          conv("x", "c1", "w1", "bias_a"), helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
          conv("r1", "c2", "w2", "bias_b"), helper.make_node("Relu", ["c2"], ["r2"], name="r2")]
    classifier("r2", 8, 5, n, i)
    return model(n, i)


def batch1_reshape():
    n, i = [], [weight("w1", [4, 3, 3, 3]), vector("b1", 4), numpy_helper.from_array(np.array([1, -1], np.int64), "flat_shape"),
                weight("fc_w", [5, 4 * 4 * 4]), vector("fc_b", 5)]
    n += [conv("x", "c1", "w1", "b1", stride=2), helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
          helper.make_node("Reshape", ["r1", "flat_shape"], ["flat"], name="flatten_b1"),
          helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc", transB=1)]
    return model(n, i, batch=1)


def reduce_mean():
    n, i = [], [weight("w1", [8, 3, 3, 3]), vector("b1", 8), weight("fc_w", [5, 8]), vector("fc_b", 5)]
    n += [conv("x", "c1", "w1", "b1"), helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
          helper.make_node("ReduceMean", ["r1"], ["m"], name="mean", axes=[2, 3], keepdims=0),
          helper.make_node("Gemm", ["m", "fc_w", "fc_b"], ["logits"], name="fc", transB=1)]
    return model(n, i)


def opset9():
    n, i = [], [weight("w1", [8, 3, 3, 3]), vector("b1", 8), weight("w2", [8, 8, 3, 3]), vector("b2", 8),
                weight("w3", [8, 8, 1, 1]), vector("b3", 8), weight("fc_w", [5, 8]), vector("fc_b", 5)]
    n += [conv("x", "c1", "w1", "b1"), helper.make_node("Clip", ["c1"], ["r1"], name="relu6", min=0.0, max=6.0),
          conv("r1", "c2", "w2", "b2"), helper.make_node("Clip", ["c2"], ["r2"], name="relu6b", min=0.0, max=6.0),
          conv("r1", "c3", "w3", "b3", k=1), helper.make_node("Relu", ["c3"], ["r3"], name="r3"),
          helper.make_node("Sum", ["r1", "r2", "r3"], ["s"], name="sum3"),
          helper.make_node("GlobalAveragePool", ["s"], ["g"], name="gap"),
          helper.make_node("Squeeze", ["g"], ["sq"], name="squeeze", axes=[2, 3]),
          helper.make_node("Gemm", ["sq", "fc_w", "fc_b"], ["logits"], name="fc", transB=1)]
    return model(n, i, opset=9)


def softmax_output():
    n, i = [], [weight("w1", [8, 3, 3, 3]), vector("b1", 8), weight("fc_w", [5, 8]), vector("fc_b", 5)]
    n += [conv("x", "c1", "w1", "b1"), helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
          helper.make_node("GlobalAveragePool", ["r1"], ["g"], name="gap"),
          helper.make_node("Flatten", ["g"], ["f"], name="flat", axis=1),
          helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["z"], name="fc", transB=1),
          helper.make_node("Softmax", ["z"], ["logits"], name="softmax", axis=1)]
    return model(n, i, opset=11)


def gap_logits():
    n, i = [], [weight("w1", [8, 3, 3, 3]), vector("b1", 8), weight("w2", [5, 8, 1, 1]), vector("b2", 5)]
    n += [conv("x", "c1", "w1", "b1"), helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
          conv("r1", "c2", "w2", "b2", k=1), helper.make_node("Relu", ["c2"], ["r2"], name="r2"),
          helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
          helper.make_node("Flatten", ["g"], ["logits"], name="flat", axis=1)]
    return model(n, i)


def lrn():
    n, i = [], [weight("w1", [8, 3, 3, 3]), vector("b1", 8), weight("fc_w", [5, 8]), vector("fc_b", 5)]
    n += [conv("x", "c1", "w1", "b1"), helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
          helper.make_node("LRN", ["r1"], ["n1"], name="norm", size=5, alpha=0.5, beta=0.75, bias=2.0),
          helper.make_node("GlobalAveragePool", ["n1"], ["g"], name="gap"),
          helper.make_node("Flatten", ["g"], ["f"], name="flat", axis=1),
          helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1)]
    return model(n, i, opset=9)


def convnext_block(opset=17):
    def node(op, inputs, out, **attributes):
        return helper.make_node(op, inputs, [out], name=out, **attributes)

    def layer_norm(x, scale, bias, out, square="Pow"):
        """LayerNormalization over the last axis, or before opset 17 the nodes exporters write for it (the
        square as Pow or as a product, the affine constants on either side)."""
        if opset >= 17:
            return [node("LayerNormalization", [x, scale, bias], out, axis=-1, epsilon=1e-6)]
        squared = (node("Pow", [out + "_d", "two"], out + "_sq") if square == "Pow"
                   else node("Mul", [out + "_d", out + "_d"], out + "_sq"))
        return [node("ReduceMean", [x], out + "_mean", axes=[-1]), node("Sub", [x, out + "_mean"], out + "_d"), squared,
                node("ReduceMean", [out + "_sq"], out + "_var", axes=[-1]), node("Add", ["eps", out + "_var"], out + "_ve"),
                node("Sqrt", [out + "_ve"], out + "_std"), node("Div", [out + "_d", out + "_std"], out + "_n"),
                node("Mul", [scale, out + "_n"], out + "_scaled"), node("Add", [out + "_scaled", bias], out)]

    def layer_norm_2d(x, out, scale, bias, square="Pow"):
        return ([node("Transpose", [x], out + "_nhwc", perm=[0, 2, 3, 1])]
                + layer_norm(out + "_nhwc", scale, bias, out + "_norm", square)
                + [node("Transpose", [out + "_norm"], out, perm=[0, 3, 1, 2])])

    i = [weight("stem_w", [8, 3, 2, 2]), vector("stem_b", 8), vector("ln0_s", 8, 1.0), vector("ln0_b", 8),
         weight("dw_w", [8, 1, 3, 3]), vector("dw_b", 8), vector("ln1_s", 8, 1.0), vector("ln1_b", 8),
         weight("fc1_w", [16, 8]), vector("fc1_b", 16), weight("fc2_w", [8, 16]), vector("fc2_b", 8),
         numpy_helper.from_array((0.5 + 0.1 * rng.standard_normal((8, 1, 1))).astype(np.float32), "gamma"),
         vector("ln2_s", 8, 1.0), vector("ln2_b", 8), weight("fc_w", [5, 8]), vector("fc_b", 5),
         numpy_helper.from_array(np.array(2 ** 0.5, np.float32), "sqrt2"),
         numpy_helper.from_array(np.array(1, np.float32), "one"), numpy_helper.from_array(np.array(0.5, np.float32), "half")]
    n = [conv("x", "stem", "stem_w", "stem_b", k=2, stride=2, pad=0)] + layer_norm_2d("stem", "s0", "ln0_s", "ln0_b")
    n += [conv("s0", "dw", "dw_w", "dw_b", group=8),
          node("Transpose", ["dw"], "dw_nhwc", perm=[0, 2, 3, 1])]
    n += layer_norm("dw_nhwc", "ln1_s", "ln1_b", "ln1", square="Mul")
    n += [node("Transpose", ["fc1_w"], "fc1_wt", perm=[1, 0]), node("MatMul", ["ln1", "fc1_wt"], "fc1"),
          node("Add", ["fc1_b", "fc1"], "fc1_out"),
          node("Div", ["fc1_out", "sqrt2"], "gelu_div"), node("Erf", ["gelu_div"], "gelu_erf"),
          node("Add", ["gelu_erf", "one"], "gelu_add"), node("Mul", ["fc1_out", "gelu_add"], "gelu_mul"),
          node("Mul", ["gelu_mul", "half"], "gelu"),
          node("Transpose", ["fc2_w"], "fc2_wt", perm=[1, 0]), node("MatMul", ["gelu", "fc2_wt"], "fc2"),
          node("Add", ["fc2_b", "fc2"], "fc2_out"), node("Transpose", ["fc2_out"], "branch", perm=[0, 3, 1, 2]),
          node("Mul", ["gamma", "branch"], "scaled"), node("Add", ["scaled", "s0"], "block"),
          node("GlobalAveragePool", ["block"], "g")]
    n += layer_norm_2d("g", "head", "ln2_s", "ln2_b")
    n += [node("Flatten", ["head"], "f", axis=1), helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1)]
    if opset < 17:
        i += [numpy_helper.from_array(np.array(2, np.float32), "two"), numpy_helper.from_array(np.array(1e-6, np.float32), "eps")]
    return model(n, i, opset=opset)


def strided_view():
    n, i = [], [weight("w1", [8, 3, 3, 3]), vector("b1", 8), weight("fc_w", [5, 8]), vector("fc_b", 5),
                numpy_helper.from_array(np.array([2, 3], np.int64), "hw"),
                numpy_helper.from_array(np.array([-1], np.int64), "flat_shape"),
                numpy_helper.from_array(np.arange(8, dtype=np.int64).reshape(1, 8, 1, 1), "view_indices"),
                numpy_helper.from_array(np.array([1, 8], np.int64), "head_shape")]
    n += [conv("x", "c1", "w1", "b1"), helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
          helper.make_node("ReduceMean", ["r1", "hw"], ["m"], name="mean", keepdims=1),
          helper.make_node("Reshape", ["m", "flat_shape"], ["flat"], name="flatten_all"),
          helper.make_node("Gather", ["flat", "view_indices"], ["view"], name="as_strided", axis=0),
          helper.make_node("Reshape", ["view", "head_shape"], ["v2"], name="view_2d"),
          helper.make_node("Gemm", ["v2", "fc_w", "fc_b"], ["logits"], name="fc", transB=1)]
    return model(n, i, opset=18, batch=1)


def convnext_block_opset13():
    return convnext_block(opset=13)


PATTERNS = [se_block, hardswish_block, silu_block, inception, dense_bn, channel_shuffle, identity_bias,
            batch1_reshape, reduce_mean, opset9, softmax_output, gap_logits, lrn, convnext_block, convnext_block_opset13,
            strided_view]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for make in PATTERNS:
        m = make()
        name = make.__name__
        path = os.path.join(out, name + ".onnx")
        onnx.save(m, path)
        x = rng.standard_normal((6, 3, 8, 8)).astype(np.float32)
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        fixed = session.get_inputs()[0].shape[0]
        step = fixed if isinstance(fixed, int) else len(x)
        y = np.concatenate([session.run(None, {"x": x[k:k + step]})[0] for k in range(0, len(x), step)])
        np.save(os.path.join(out, name + "-input.npy"), x)
        np.save(os.path.join(out, name + "-ort.npy"), y)
        print(name)


if __name__ == "__main__":
    main()
