"""Read a legacy (pre-zip, torch < 1.6) PyTorch ``.pth`` state dict with ``pickle`` + numpy only.

Legacy file layout (torch.serialization._legacy_save):
  pickle(magic) pickle(protocol) pickle(sys_info) pickle(obj) pickle(storage_keys)
  then, for each storage key in that order: int64 element count + raw little-endian bytes.
Tensors inside ``obj`` are ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``
and storages are persistent ids ``('storage', StorageType, key, location, numel, view_meta)``.
"""
import collections
import pickle
import struct

import numpy as np

_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_MAGIC = 0x1950A86A20F9469CFC6C


class _Storage:
    """Placeholder for a storage; its bytes are filled in after the object pickle is read."""

    def __init__(self, dtype, numel):
        self.dtype, self.numel, self.array = dtype, numel, None


class _LazyTensor:
    """A view (offset, size, stride) into a storage, materialised once storage bytes are read."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def to_numpy(self):
        base = self.storage.array
        item = base.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.size, strides=[s * item for s in self.stride])
        return np.array(view, copy=True)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, *rest):
    return _LazyTensor(storage, offset, size, stride)


class _StorageType:
    def __init__(self, name):
        self.name = name


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f, encoding="latin1")
        self.storages = storages

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"unsupported global {module}.{name}")

    def persistent_load(self, pid):
        kind, stype, key, _location, numel = pid[:5]
        assert kind == "storage" and (len(pid) < 6 or pid[5] is None), "storage views unsupported"
        if key not in self.storages:
            self.storages[key] = _Storage(_DTYPES[stype.name], numel)
        return self.storages[key]


def load_state_dict(path):
    """Return an ``OrderedDict[str, np.ndarray]`` from a legacy PyTorch state-dict file."""
    with open(path, "rb") as f:
        if pickle.load(f) != _MAGIC:
            raise ValueError(f"{path}: not a legacy PyTorch file (zip-format files need torch.load)")
        pickle.load(f)  # protocol version
        sys_info = pickle.load(f)
        assert sys_info.get("little_endian", True), "big-endian files unsupported"
        storages = {}
        obj = _Unpickler(f, storages).load()
        keys = pickle.load(f)
        for key in keys:
            st = storages[key]
            (numel,) = struct.unpack("<q", f.read(8))
            assert numel == st.numel, (key, numel, st.numel)
            st.array = np.frombuffer(f.read(numel * np.dtype(st.dtype).itemsize), dtype=st.dtype)
    return collections.OrderedDict(
        (k, v.to_numpy() if isinstance(v, _LazyTensor) else v) for k, v in obj.items())


if __name__ == "__main__":
    import sys
    for k, v in load_state_dict(sys.argv[1]).items():
        print(k, getattr(v, "shape", v), getattr(v, "dtype", ""))
