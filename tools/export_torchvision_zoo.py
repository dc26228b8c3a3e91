#!/usr/bin/env python3
"""Export the torchvision classification CNNs to ONNX for the zoo benchmark (benchmarks/zoo.sh).

Weights are random but seeded (pretrained weights download at run time and fail here), and every
BatchNorm gets non-trivial statistics and affine parameters, so that folding and calibration see
realistic per-channel spreads. Each model is written in five variants (--variants picks some):

  NAME.onnx          dynamic batch (dynamic_axes on the input and output), BatchNorm kept
  NAME.b1.onnx       fixed batch 1, as torch.onnx.export writes without dynamic_axes
  NAME.folded.onnx   dynamic batch, constant folding on (the exporter folds BatchNorm into Conv
                     and de-duplicates equal initializers through Identity nodes)
  NAME.op13.onnx     dynamic batch at opset 13 (LayerNormalization written as its decomposition)
  NAME.dynamo.onnx   torch.onnx.export(dynamo=True), the default since PyTorch 2.9 (needs onnxscript):
                     opset 18+, batch 1, BatchNorm folded by the exporter's optimizer

plus NAME-input.npy (64 calibration samples) and NAME-eval.npy (100 evaluation samples), seeded
standard-normal images shaped like the model's input.

    .venv-tools/bin/python tools/export_torchvision_zoo.py --out assets/zoo [--size 224] [--opset 17]
"""
import argparse
import os
import warnings

import numpy as np
import torch
import torchvision

MODELS = [
    "resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
    "shufflenet_v2_x1_0", "squeezenet1_1", "densenet121", "googlenet", "regnet_x_400mf", "mnasnet0_5",
    "vgg11_bn", "convnext_tiny",
]


def build(name: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    kwargs = {"weights": None}
    if name == "googlenet":
        kwargs.update(aux_logits=False, init_weights=True)
    model = getattr(torchvision.models, name)(**kwargs)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                c = module.num_features
                module.running_mean.copy_(0.1 * torch.randn(c, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(c, generator=generator))
                module.weight.copy_(0.75 + 0.5 * torch.rand(c, generator=generator))
                module.bias.copy_(0.1 * torch.randn(c, generator=generator))
    return model.eval()


VARIANTS = ["onnx", "b1.onnx", "folded.onnx", "op13.onnx", "dynamo.onnx"]


def export_dynamo(model, x, path):
    """torch.onnx.export's default since PyTorch 2.9 (torch.export, onnxscript): opset 18 or later, fixed batch."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), path, dynamo=True, input_names=["input"], output_names=["logits"])


def export(model, x, path, opset, dynamic, fold):
    kwargs = dict(input_names=["input"], output_names=["logits"], opset_version=opset, do_constant_folding=fold)
    if dynamic:
        kwargs["dynamic_axes"] = {"input": {0: "batch"}, "logits": {0: "batch"}}
    if not fold:
        kwargs["training"] = torch.onnx.TrainingMode.PRESERVE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (x,), path, dynamo=False, **kwargs)
        except TypeError:
            torch.onnx.export(model, (x,), path, **kwargs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--variants", nargs="*", default=VARIANTS, choices=VARIANTS)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(2)
    for index, name in enumerate(args.models):
        model = build(name, args.seed + index)
        x = torch.randn(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(7))
        base = os.path.join(args.out, name)
        exports = {
            "onnx": lambda path: export(model, x, path, args.opset, dynamic=True, fold=False),
            "b1.onnx": lambda path: export(model, x, path, args.opset, dynamic=False, fold=False),
            "folded.onnx": lambda path: export(model, x, path, args.opset, dynamic=True, fold=True),
            # Opset 13 has no LayerNormalization: exporters write it as ReduceMean/Sub/Pow/Sqrt/Div.
            "op13.onnx": lambda path: export(model, x, path, 13, dynamic=True, fold=False),
            "dynamo.onnx": lambda path: export_dynamo(model, x, path),
        }
        for variant in args.variants:
            exports[variant](base + "." + variant)
        rng = np.random.default_rng(args.seed + 100 + index)
        shape = (3, args.size, args.size)
        np.save(base + "-input.npy", rng.standard_normal((64,) + shape).astype(np.float32))
        np.save(base + "-eval.npy", rng.standard_normal((100,) + shape).astype(np.float32))
        print(f"{name}: exported (opset {args.opset}, {args.size}x{args.size})", flush=True)


if __name__ == "__main__":
    main()
