// The public pipeline re-exports the stages it is built from, so `import RAPQ` is all a user needs.
@_exported import DataIO
@_exported import Graph
@_exported import ONNX
@_exported import TensorKernels
