#!/usr/bin/env python3
"""Copies the ONNX operator conformance cases RAPQ's operators cover into Tests/ONNXTests/Resources/node/.

The cases (`model.onnx` + `test_data_set_0/{input,output}_N.pb`) ship inside the onnx 1.22.0 wheel under
`onnx/backend/test/data/node/` (1.23 no longer ships them). The wheel is fetched with
`pip download onnx==1.22.0 --no-deps` into a temporary directory and read as a zip file; onnx itself is
never imported, so any Python 3 with pip works.

A case is copied when
  - its directory name starts with one of PREFIXES and does not end in `_expanded` (those replace the
    operator by its function body, i.e. test other operators);
  - its model's nodes are all of the operator the prefix names (so `test_convtranspose*`,
    `test_convinteger*`, `test_matmulinteger*` are left out: different operators);
  - its data is float32: the first graph input is FLOAT and every other graph input or output is FLOAT or
    INT64 (INT64 only appears as Reshape's shape operand and MaxPool's optional indices output).

Cases that RAPQ does not support (1-D/3-D windows, extra outputs...) are still copied: the Swift test
lists them explicitly and checks that importing each fails with a clear error.

Usage: tools/extract_onnx_node_tests.py [--wheel path/to/onnx-1.22.0-*.whl]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

ONNX_VERSION = "1.22.0"
NODE_DIR = "onnx/backend/test/data/node/"

# Directory-name prefix -> the ONNX operator the case must exercise.
PREFIXES = {
    "test_basic_conv": "Conv",
    "test_conv": "Conv",
    "test_batchnorm": "BatchNormalization",
    "test_relu": "Relu",
    "test_clip": "Clip",
    "test_add": "Add",
    "test_maxpool": "MaxPool",
    "test_averagepool": "AveragePool",
    "test_globalaveragepool": "GlobalAveragePool",
    "test_flatten": "Flatten",
    "test_reshape": "Reshape",
    "test_gemm": "Gemm",
    "test_matmul": "MatMul",
    "test_concat": "Concat",
    "test_mul": "Mul",
    "test_sigmoid": "Sigmoid",
    "test_hardsigmoid": "HardSigmoid",
    "test_hardswish": "HardSwish",
    "test_split": "Split",
}

FLOAT, INT64 = 1, 7


# --- A minimal protobuf wire-format reader: enough to read op types and element types. ---

def _varint(buf, pos):
    result, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf):
    """Yields (field number, wire type, value) for each field of a serialized message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _first(buf, number, default=None):
    for n, _, v in _fields(buf):
        if n == number:
            return v
    return default


def _all(buf, number):
    return [v for n, _, v in _fields(buf) if n == number]


def describe_model(data):
    """Returns (op types of the graph's nodes, elem types of the graph inputs, of the graph outputs)."""
    graph = _first(data, 7, b"")                      # ModelProto.graph
    ops = [_first(node, 4, b"").decode() for node in _all(graph, 1)]   # NodeProto.op_type

    def elem_type(value_info):
        type_proto = _first(value_info, 2, b"")        # ValueInfoProto.type
        tensor = _first(type_proto, 1, b"")            # TypeProto.tensor_type
        return _first(tensor, 1, 0)                    # TypeProto.Tensor.elem_type

    return ops, [elem_type(v) for v in _all(graph, 11)], [elem_type(v) for v in _all(graph, 12)]


def operator_for(case):
    """The operator a case's name promises, or None when no prefix matches."""
    for prefix in sorted(PREFIXES, key=len, reverse=True):
        if case.startswith(prefix):
            return PREFIXES[prefix]
    return None


def selected(case, model):
    op = operator_for(case)
    if op is None or case.endswith("_expanded"):
        return False
    ops, inputs, outputs = describe_model(model)
    if not ops or any(o != op for o in ops):
        return False
    if not inputs or inputs[0] != FLOAT:
        return False
    return all(t in (FLOAT, INT64) for t in inputs[1:] + outputs)


ORIGIN = """# Origin of these files

Operator conformance cases of the ONNX project, copied unmodified from the `onnx` {version} wheel on PyPI
(`onnx/backend/test/data/node/<case>/`), by `tools/extract_onnx_node_tests.py`.

- Project: ONNX, https://github.com/onnx/onnx
- License: Apache License 2.0 (https://www.apache.org/licenses/LICENSE-2.0)
- Wheel: `{wheel}`

Selection: the float32 cases of the operators RAPQ supports (see the script's docstring); {count} cases,
{size} bytes. Each directory holds `model.onnx` and `test_data_set_0/{{input,output}}_N.pb` (serialized
`TensorProto`s). The Swift test `Tests/ONNXTests/ConformanceTests.swift` runs every case and lists the
ones RAPQ deliberately rejects.
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheel", help="an already downloaded onnx wheel (default: pip download it)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--output", default=os.path.join(root, "Tests/ONNXTests/Resources/node"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel
        if wheel is None:
            subprocess.run([sys.executable, "-m", "pip", "download", f"onnx=={ONNX_VERSION}", "--no-deps",
                            "--only-binary=:all:", "-d", tmp], check=True)
            wheel = next(os.path.join(tmp, f) for f in os.listdir(tmp) if f.endswith(".whl"))

        if os.path.isdir(args.output):
            shutil.rmtree(args.output)
        os.makedirs(args.output)

        with zipfile.ZipFile(wheel) as archive:
            names = [n for n in archive.namelist() if n.startswith(NODE_DIR)]
            cases = sorted({n[len(NODE_DIR):].split("/")[0] for n in names if "/" in n[len(NODE_DIR):]})
            kept, total = [], 0
            for case in cases:
                if operator_for(case) is None:
                    continue
                model_name = f"{NODE_DIR}{case}/model.onnx"
                if model_name not in names or not selected(case, archive.read(model_name)):
                    continue
                for name in names:
                    if name.startswith(f"{NODE_DIR}{case}/") and not name.endswith("/"):
                        relative = name[len(NODE_DIR):]
                        if not relative.startswith(f"{case}/model.onnx") and "/test_data_set_0/" not in relative:
                            continue
                        target = os.path.join(args.output, relative)
                        os.makedirs(os.path.dirname(target), exist_ok=True)
                        data = archive.read(name)
                        with open(target, "wb") as out:
                            out.write(data)
                        total += len(data)
                kept.append(case)

        with open(os.path.join(args.output, "ORIGIN.md"), "w") as out:
            out.write(ORIGIN.format(version=ONNX_VERSION, wheel=os.path.basename(wheel), count=len(kept), size=total))
    print(f"copied {len(kept)} cases, {total} bytes, into {args.output}")


if __name__ == "__main__":
    main()
