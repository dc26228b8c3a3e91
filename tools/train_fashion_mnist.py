#!/usr/bin/env python3
"""Train two small CNNs on Fashion-MNIST with torch (CPU, fixed seed) and write them as ONNX.

The ONNX graphs are built by hand with onnx.helper from the trained weights (not torch.onnx), so
BatchNormalization is guaranteed to stay a node (running stats, eps 1e-5) and the layout is exactly:
  models/fmnist-resnet.onnx       stem Conv3x3 16 + BN + Relu; 3 stages x 2 BasicBlocks (16/32/64 ch,
                                  strides 1/2/2; shortcut Conv1x1+BN when the shape changes); Add + Relu;
                                  GlobalAveragePool, Flatten, Gemm 10
  models/fmnist-mobilenetv2.onnx  stem Conv3x3 s2 16 + BN + Clip(0,6); inverted residuals (expand 1x1+BN+Clip,
                                  depthwise 3x3+BN+Clip, project 1x1+BN, Add when stride 1 and cin == cout;
                                  the first block has expansion 1); Conv1x1 256 + BN + Clip;
                                  GlobalAveragePool, Flatten, Gemm 10
Input "input" [N,1,28,28] = (pixel/255 - 0.2860)/0.3530, output "logits" [N,10]. Convs use explicit pads.
Accuracy on the 10k test set is measured with onnxruntime and written to models/fmnist-metrics.json.

Usage: WITH_TORCH=1 tools/setup_venv.sh; .venv-tools/bin/python tools/train_fashion_mnist.py [--only resnet]
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ort_reference import run as ort_run  # noqa: E402
from prepare_fmnist import load, normalise  # noqa: E402


# ---------------------------------------------------------------- models (torch)
class ConvBN(nn.Module):
    """Conv (no bias, 'same'-style explicit padding k//2) + BatchNorm + optional relu/relu6."""

    def __init__(self, cin, cout, k, stride=1, groups=1, act=None):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = act

    def forward(self, x):
        x = self.bn(self.conv(x))
        return F.relu(x) if self.act == "relu" else F.relu6(x) if self.act == "relu6" else x


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = ConvBN(cin, cout, 3, stride, act="relu")
        self.c2 = ConvBN(cout, cout, 3)
        self.down = ConvBN(cin, cout, 1, stride) if (stride != 1 or cin != cout) else None

    def forward(self, x):
        return F.relu(self.c2(self.c1(x)) + (self.down(x) if self.down else x))


class ResNet(nn.Module):
    def __init__(self, widths=(16, 32, 64), strides=(1, 2, 2), blocks=2):
        super().__init__()
        self.stem = ConvBN(1, widths[0], 3, act="relu")
        layers, cin = [], widths[0]
        for w, s in zip(widths, strides):
            for b in range(blocks):
                layers.append(BasicBlock(cin, w, s if b == 0 else 1))
                cin = w
        self.blocks = nn.ModuleList(layers)
        self.fc = nn.Linear(cin, 10)

    def forward(self, x):
        x = self.stem(x)
        for b in self.blocks:
            x = b(x)
        return self.fc(x.mean((2, 3)))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        c = cin * t
        self.expand = ConvBN(cin, c, 1, act="relu6") if t != 1 else None
        self.dw = ConvBN(c, c, 3, stride, groups=c, act="relu6")
        self.project = ConvBN(c, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.dw(self.expand(x) if self.expand else x))
        return x + y if self.residual else y


# (expansion t, out channels, stride) per block after a stride-2 stem: 14x14 -> 7x7 (at block 3).
# Expansion 4 rather than 6 keeps CPU training time close to the ResNet's.
MBV2_BLOCKS = [(1, 16, 1), (4, 24, 1), (4, 24, 1), (4, 32, 2), (4, 32, 1), (4, 32, 1), (4, 64, 1), (4, 64, 1)]


class MobileNetV2(nn.Module):
    def __init__(self, blocks=MBV2_BLOCKS, last=256):
        super().__init__()
        self.stem = ConvBN(1, 16, 3, 2, act="relu6")
        layers, cin = [], 16
        for t, c, s in blocks:
            layers.append(InvertedResidual(cin, c, s, t))
            cin = c
        self.blocks = nn.ModuleList(layers)
        self.head = ConvBN(cin, last, 1, act="relu6")
        self.fc = nn.Linear(last, 10)

    def forward(self, x):
        x = self.stem(x)
        for b in self.blocks:
            x = b(x)
        return self.fc(self.head(x).mean((2, 3)))


# ---------------------------------------------------------------- ONNX export (onnx.helper)
class Emitter:
    def __init__(self):
        self.nodes, self.inits = [], []

    def init(self, name, t):
        arr = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name))
        return name

    def node(self, op, ins, name, **attrs):
        self.nodes.append(helper.make_node(op, ins, [name], name=name, **attrs))
        return name

    def conv_bn(self, x, m, name):
        c = m.conv
        p = c.padding[0]
        x = self.node("Conv", [x, self.init(name + ".weight", c.weight)], name + ".conv",
                      kernel_shape=list(c.kernel_size), strides=list(c.stride), pads=[p, p, p, p],
                      group=c.groups)
        bn = m.bn
        x = self.node("BatchNormalization",
                      [x] + [self.init(f"{name}.bn.{k}", getattr(bn, k))
                             for k in ("weight", "bias", "running_mean", "running_var")],
                      name + ".bn", epsilon=bn.eps)
        if m.act == "relu":
            x = self.node("Relu", [x], name + ".relu")
        elif m.act == "relu6":
            x = self.node("Clip", [x, "relu6_min", "relu6_max"], name + ".relu6")
        return x

    def head(self, x, fc):
        x = self.node("GlobalAveragePool", [x], "pool")
        x = self.node("Flatten", [x], "flatten", axis=1)
        return self.node("Gemm", [x, self.init("fc.weight", fc.weight), self.init("fc.bias", fc.bias)],
                         "logits", transB=1)


def to_onnx(model, name):
    e = Emitter()
    if isinstance(model, MobileNetV2):
        e.init("relu6_min", np.array(0.0, np.float32))
        e.init("relu6_max", np.array(6.0, np.float32))
    x = e.conv_bn("input", model.stem, "stem")
    for i, b in enumerate(model.blocks):
        n = f"block{i}"
        if isinstance(b, BasicBlock):
            y = e.conv_bn(e.conv_bn(x, b.c1, n + ".c1"), b.c2, n + ".c2")
            sc = e.conv_bn(x, b.down, n + ".down") if b.down else x
            x = e.node("Relu", [e.node("Add", [y, sc], n + ".add")], n + ".relu")
        else:
            y = e.conv_bn(x, b.expand, n + ".expand") if b.expand else x
            y = e.conv_bn(e.conv_bn(y, b.dw, n + ".dw"), b.project, n + ".project")
            x = e.node("Add", [y, x], n + ".add") if b.residual else y
    if isinstance(model, MobileNetV2):
        x = e.conv_bn(x, model.head, "head")
    out = e.head(x, model.fc)
    graph = helper.make_graph(
        e.nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", 10])], e.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                          producer_name="rapq-swift tools/train_fashion_mnist.py")
    m.ir_version = 8
    m.doc_string = "Fashion-MNIST classifier. Input: (pixel/255 - 0.2860)/0.3530, [N,1,28,28]."
    onnx.checker.check_model(m, full_check=True)
    return m


# ---------------------------------------------------------------- training
def train(model, x, y, epochs, seed, batch=128, lr=0.1, wd=5e-4):
    """SGD + Nesterov momentum, one-cycle LR, random horizontal flips; deterministic for a seed."""
    g = torch.Generator().manual_seed(seed)
    steps = epochs * (len(x) // batch)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=wd)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.25)
    for ep in range(epochs):
        model.train()
        t0, perm, total = time.time(), torch.randperm(len(x), generator=g), 0.0
        for i in range(len(x) // batch):
            idx = perm[i * batch:(i + 1) * batch]
            xb, yb = x[idx], y[idx]
            flip = torch.rand(len(xb), generator=g) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        print(f"  epoch {ep + 1}/{epochs}: loss {total / (len(x) // batch):.4f} ({time.time() - t0:.0f} s)",
              flush=True)
    model.eval()
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["resnet", "mobilenetv2"])
    ap.add_argument("--epochs-resnet", type=int, default=3)
    ap.add_argument("--epochs-mobilenetv2", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    # One thread by default: on a shared 2-core machine, 2 OpenMP threads stall at every barrier when
    # one is descheduled (seen: 28x slower); run the two models as two 1-thread processes instead.
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N images only (smoke test)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    torch.use_deterministic_algorithms(True)

    xtr_u8, ytr = load("train")
    xte_u8, yte = load("t10k")
    if a.limit:
        xtr_u8, ytr = xtr_u8[:a.limit], ytr[:a.limit]
    xtr, ytr_t = torch.from_numpy(normalise(xtr_u8)), torch.from_numpy(ytr)
    xte = normalise(xte_u8)

    metrics_path = "models/fmnist-metrics.json"
    for name, ctor, epochs in [("resnet", ResNet, a.epochs_resnet),
                               ("mobilenetv2", MobileNetV2, a.epochs_mobilenetv2)]:
        if a.only and a.only != name:
            continue
        torch.manual_seed(a.seed)
        model = ctor()
        params = sum(p.numel() for p in model.parameters())
        print(f"{name}: {params} trainable parameters, {epochs} epochs", flush=True)
        t0 = time.time()
        train(model, xtr, ytr_t, epochs, a.seed)
        secs = time.time() - t0
        with torch.no_grad():
            ref = torch.cat([model(torch.from_numpy(xte[i:i + 1000])) for i in range(0, 10000, 1000)]).numpy()
        out = f"models/fmnist-{name}.onnx"
        onnx.save(to_onnx(model, f"fmnist-{name}"), out + ".tmp")
        os.replace(out + ".tmp", out)
        logits = ort_run(out, xte, batch=500)
        acc = float((logits.argmax(1) == yte).mean())
        diff = float(np.abs(logits - ref).max())
        agree = float((logits.argmax(1) == ref.argmax(1)).mean())
        print(f"{name}: onnxruntime test accuracy {acc:.4f} (torch/ORT max |diff| {diff:.2e}, "
              f"argmax agreement {agree:.4f}), {secs:.0f} s training", flush=True)
        metrics = json.load(open(metrics_path)) if os.path.exists(metrics_path) else {}
        metrics[name] = {"onnx": out, "trainable_params": params, "epochs": epochs, "seed": a.seed,
                         "train_seconds": round(secs), "test_accuracy_ort_10k": acc,
                         "test_accuracy_ort_1k": float((logits[:1000].argmax(1) == yte[:1000]).mean())}
        if not a.limit:
            with open(metrics_path, "w") as f:
                json.dump(metrics, f, indent=1)


if __name__ == "__main__":
    main()
