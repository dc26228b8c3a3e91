#!/usr/bin/env python3
"""Markdown table of benchmarks/zoo.sh results, one row per model and export.

    python3 benchmarks/zoo_table.py benchmarks/results/zoo/*.jsonl

Later lines (and later files) replace earlier ones for the same model and export, so re-runs of one model
update its row. Rows follow the model order of zoo.sh, then the export order dynamic, batch-1, folded,
opset 13, dynamo. Standard library only.
"""
import json
import sys

MODELS = ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
          "shufflenet_v2_x1_0", "squeezenet1_1", "densenet121", "googlenet", "regnet_x_400mf", "mnasnet0_5",
          "vgg11_bn", "convnext_tiny"]
VARIANTS = ["onnx", "b1.onnx", "folded.onnx", "op13.onnx", "dynamo.onnx"]
COLUMNS = [("inspect", "inspect"), ("run_vs_ort", "run vs onnxruntime (rel. diff, same top-1)"),
           ("pot_mse_w8a8", "pot-mse W8A8"), ("pot_mse_verify", "verify --data"),
           ("rapq_w4a8", "rapq W4A8"), ("rapq_verify", "verify --data"),
           ("qdq_float_convs", "QDQ convs left float")]


def cell(value):
    """Failures keep their first words only; the full message is in the JSON line."""
    text = str(value)
    if text.startswith("fail"):
        text = text.replace("fail: Error: ", "fail: ")[:70].rstrip() + "..."
    return text.replace("|", "\\|")


def main(paths):
    rows = {}
    for path in paths:
        with open(path) as handle:
            for line in handle:
                line = line.strip()
                if line:
                    row = json.loads(line)
                    rows[(row["model"], row["variant"])] = row
    order = lambda key: (MODELS.index(key[0]) if key[0] in MODELS else len(MODELS), key[0],
                         VARIANTS.index(key[1]) if key[1] in VARIANTS else len(VARIANTS), key[1])
    print("| model | export | " + " | ".join(title for _, title in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    for key in sorted(rows, key=order):
        row = rows[key]
        if row.get("run") not in (None, "ok"):
            row = dict(row, run_vs_ort=row["run"])
        print(f"| {key[0]} | {key[1]} | " + " | ".join(cell(row.get(field, "-")) for field, _ in COLUMNS) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: zoo_table.py RESULTS.jsonl...")
    main(sys.argv[1:])
