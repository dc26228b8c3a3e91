#!/usr/bin/env bash
# Regenerates Sources/ONNX/onnx-subset.pb.swift from Sources/ONNX/onnx-subset.proto.
#
# Needs `protoc` (Debian: apt-get install protobuf-compiler) and `protoc-gen-swift` of the same
# swift-protobuf version the package depends on (see Package.resolved). If PROTOC_GEN_SWIFT is unset
# and no protoc-gen-swift is on PATH, the plugin is built from the package's own checkout of
# swift-protobuf (fetched by `swift package resolve`).
#
# Usage: tools/regenerate_onnx_proto.sh            (from anywhere inside the repository)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

plugin="${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift || true)}"
if [[ -z "$plugin" ]]; then
    swift package resolve
    checkout="$root/.build/checkouts/swift-protobuf"
    [[ -d "$checkout" ]] || { echo "error: no swift-protobuf checkout at $checkout" >&2; exit 1; }
    scratch="$root/.build/protoc-gen-swift"
    swift build -c release --package-path "$checkout" --scratch-path "$scratch" --product protoc-gen-swift
    plugin="$(swift build -c release --package-path "$checkout" --scratch-path "$scratch" --show-bin-path)/protoc-gen-swift"
fi

protoc \
    --plugin=protoc-gen-swift="$plugin" \
    --swift_out=Sources/ONNX \
    --swift_opt=Visibility=Public \
    --proto_path=Sources/ONNX \
    onnx-subset.proto

echo "wrote Sources/ONNX/onnx-subset.pb.swift with $("$plugin" --version 2>/dev/null || echo protoc-gen-swift)"
