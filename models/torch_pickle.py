"""Read a legacy (pre-1.6, non-zip) PyTorch checkpoint into numpy arrays, without torch.

The legacy format written by ``torch.save(..., _use_new_zipfile_serialization=False)``
is a sequence of pickles in one file:

1. a magic number, 2. the protocol version, 3. a ``sys_info`` dict,
4. the object itself, whose tensors reference storages through pickle
   *persistent ids* ``("storage", storage_type, key, location, numel, view)``,
5. the list of storage keys in file order,
6. then, for each key in that order: an int64 element count followed by the raw
   little-endian element bytes.

Tensors are unpickled via ``torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, ...)`` before any storage bytes are read, so we record them lazily and
materialise them as numpy arrays once every storage is loaded.
"""

from __future__ import annotations

import collections
import pickle
import struct
from typing import Any, BinaryIO

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# torch storage class name -> numpy dtype
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    """Stand-in for ``torch.FloatStorage`` etc.: only its dtype matters."""

    def __init__(self, name: str):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A storage whose bytes are filled in after the main pickle."""

    def __init__(self, dtype: np.dtype, numel: int):
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None


class _LazyTensor:
    """Arguments of ``_rebuild_tensor_v2``; turned into an ndarray at the end."""

    def __init__(self, storage: _Storage, offset: int, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialise(self) -> np.ndarray:
        base = self.storage.data
        assert base is not None, "storage bytes were never read"
        item = base.dtype.itemsize
        arr = np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.size, strides=tuple(s * item for s in self.stride)
        )
        return np.array(arr, copy=True)  # own the memory, contiguous


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *_ignored):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks, *_ignored):
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, f: BinaryIO, storages: dict):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module: str, name: str):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a checkpoint")

    def persistent_load(self, pid):
        kind = pid[0]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {kind!r}")
        storage_type, key, _location, numel, view_metadata = pid[1:]
        if view_metadata is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type.dtype, numel)
        return self.storages[key]


def _convert(obj: Any) -> Any:
    if isinstance(obj, _LazyTensor):
        return obj.materialise()
    if isinstance(obj, dict):
        return type(obj)((k, _convert(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_convert(v) for v in obj)
    return obj


def load_legacy_checkpoint(path: str) -> Any:
    """Load a legacy torch checkpoint; tensors come back as numpy arrays."""
    with open(path, "rb") as f:
        if zipfile_magic(f):
            raise ValueError(f"{path} is a zip (torch>=1.6) checkpoint, not the legacy format")
        magic = pickle.load(f)
        if magic != LEGACY_MAGIC:
            raise ValueError(f"{path}: bad magic number {magic!r}")
        _protocol = pickle.load(f)
        sys_info = pickle.load(f)
        if not sys_info.get("little_endian", True):
            raise ValueError("big-endian checkpoints are not supported")
        storages: dict = {}
        obj = _Unpickler(f, storages).load()
        keys = pickle.load(f)
        for key in keys:
            st = storages[key]
            (count,) = struct.unpack("<q", f.read(8))
            if count != st.numel:
                raise ValueError(f"storage {key}: {count} elements on disk, {st.numel} expected")
            nbytes = count * st.dtype.itemsize
            buf = f.read(nbytes)
            if len(buf) != nbytes:
                raise ValueError(f"storage {key}: truncated file")
            st.data = np.frombuffer(buf, dtype=st.dtype.newbyteorder("<"))
    return _convert(obj)


def zipfile_magic(f: BinaryIO) -> bool:
    pos = f.tell()
    head = f.read(4)
    f.seek(pos)
    return head == b"PK\x03\x04"
