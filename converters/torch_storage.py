"""Torch tensor storage decoding without torch: legacy bytes format and the zip format.

Two containers hold tensor data:
- NVIDIA pickles call `torch.storage._load_from_bytes(b)`, where `b` is torch's legacy save
  format: pickled magic number, protocol version 1001, a sys-info dict, a pickle of the storage
  (persistent id `('storage', <XStorage class>, key, location, numel[, view])`), a pickled list
  of keys, then per key an int64 element count and the raw data.
- `torch.save` files (rosinality `.pt`) are zip archives: `<dir>/data.pkl` plus raw
  `<dir>/data/<key>` records (persistent id `('storage', <XStorage class>, key, location, numel)`).
  Pre-1.6 `torch.save` files use the legacy format for the whole file.

Tensors come back as `TensorRef`s (storage, offset, size, stride), turned into numpy arrays on
demand by `to_numpy`, so tensors the converter does not use (D, optimizer state) are never copied.
"""
from __future__ import annotations

import io
import math
import struct
import zipfile
from typing import Any, Callable

import numpy as np

from converters.errors import ConversionError
from converters.safe_pickle import COMMON_GLOBALS, restricted_load

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
# A legacy torch file starts with the pickled magic number (PROTO 2, LONG1 of 10 bytes).
LEGACY_PREFIX = b"\x80\x02\x8a\x0a" + LEGACY_MAGIC.to_bytes(10, "little")
MAX_ELEMENTS = 2**31
BFLOAT16 = "bfloat16"  # marker: numpy has no bfloat16; decoded to float32 (exact)

# Element type of each torch storage class (the class name is the only dtype information).
STORAGE_DTYPES: dict[str, str] = {
    "DoubleStorage": "f8", "FloatStorage": "f4", "HalfStorage": "f2", "BFloat16Storage": BFLOAT16,
    "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?", "ComplexFloatStorage": "c8",
    "ComplexDoubleStorage": "c16", "UntypedStorage": "u1",
}
# torch dtype globals (e.g. `torch.float32`), used by `_rebuild_tensor_v3`.
TORCH_DTYPES: dict[str, str] = {
    "float64": "f8", "double": "f8", "float32": "f4", "float": "f4", "float16": "f2", "half": "f2",
    "bfloat16": BFLOAT16, "int64": "i8", "long": "i8", "int32": "i4", "int": "i4", "int16": "i2",
    "short": "i2", "int8": "i1", "uint8": "u1", "bool": "?", "uint16": "u2", "uint32": "u4",
    "uint64": "u8", "complex64": "c8", "complex128": "c16",
}


class StorageType:
    """Stand-in for a torch storage class such as `torch.FloatStorage` (names the dtype)."""

    def __init__(self, name: str, dtype: str):
        self.name = name
        self.dtype = dtype

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class TorchDType:
    """Stand-in for a torch dtype global such as `torch.float32`."""

    def __init__(self, name: str, dtype: str):
        self.name = name
        self.dtype = dtype

    def __repr__(self) -> str:
        return f"torch.{self.name}"


def _np_dtype(code: str, byteorder: str) -> np.dtype:
    if code == BFLOAT16:
        code = "u2"
    dt = np.dtype(code)
    return dt.newbyteorder("<" if byteorder == "little" else ">") if dt.itemsize > 1 else dt


def _itemsize(code: str) -> int:
    return 2 if code == BFLOAT16 else np.dtype(code).itemsize


class Storage:
    """A flat torch storage: `numel` elements of `dtype`, bytes supplied now or later."""

    def __init__(self, dtype: str, numel: int, source: str, byteorder: str = "little",
                 loader: Callable[[], bytes] | None = None):
        if not isinstance(numel, int) or numel < 0:
            raise ConversionError(f"{source}: bad storage size {numel!r}")
        self.dtype = dtype
        self.numel = numel
        self.source = source
        self.byteorder = byteorder
        self._loader = loader
        self._raw: bytes | memoryview | None = None
        self._array: np.ndarray | None = None
        self._parent: tuple[Storage, int] | None = None

    def set_bytes(self, raw: bytes | memoryview) -> None:
        self._raw = raw

    @property
    def nbytes(self) -> int:
        return self.numel * _itemsize(self.dtype)

    def raw(self) -> bytes | memoryview:
        if self._raw is None:
            if self._loader is None:
                raise ConversionError(f"{self.source}: storage data missing")
            self._raw = self._loader()
        if len(self._raw) < self.nbytes:
            raise ConversionError(f"{self.source}: storage holds {len(self._raw)} bytes, "
                                  f"expected {self.nbytes} (truncated file?)")
        return self._raw

    def array(self) -> np.ndarray:
        """The storage as a 1-D numpy array (native byte order; bfloat16 widened to float32)."""
        if self._parent is not None:
            parent, offset = self._parent
            return parent.array()[offset:offset + self.numel]
        if self._array is None:
            a = np.frombuffer(self.raw(), _np_dtype(self.dtype, self.byteorder), self.numel)
            if self.dtype == BFLOAT16:
                a = (a.astype(np.uint32) << 16).view(np.float32)
            self._array = a.astype(a.dtype.newbyteorder("="), copy=False)
        return self._array

    def view(self, offset: int, numel: int) -> "Storage":
        """A legacy storage view (elements offset..offset+numel of this storage)."""
        v = Storage(self.dtype, numel, self.source, self.byteorder)
        v._parent = (self, offset)
        return v


class TensorRef:
    """A tensor: strided view of a storage, decoded by `to_numpy` (never a torch object)."""

    def __init__(self, storage: Storage, offset: int, size: tuple, stride: tuple,
                 dtype: str | None = None):
        if not isinstance(storage, Storage):
            raise ConversionError(f"tensor built from a {type(storage).__name__}, not a storage")
        size, stride = tuple(size), tuple(stride)
        if not all(isinstance(v, int) for v in (offset, *size, *stride)) or len(size) != len(
                stride):
            raise ConversionError(f"{storage.source}: bad tensor geometry "
                                  f"offset={offset!r} size={size!r} stride={stride!r}")
        self.storage, self.offset, self.shape, self.stride = storage, offset, size, stride
        self.dtype = dtype  # reinterpretation of an untyped (byte) storage, `_rebuild_tensor_v3`

    def __repr__(self) -> str:
        return f"TensorRef(shape={self.shape}, dtype={self.dtype or self.storage.dtype})"

    def numpy(self) -> np.ndarray:
        base = self.storage.array()
        if self.dtype is not None and self.dtype != self.storage.dtype:
            if self.storage.dtype != "u1":
                raise ConversionError(f"{self.storage.source}: cannot view a "
                                      f"{self.storage.dtype} storage as {self.dtype}")
            n = len(base) // _itemsize(self.dtype)
            base = np.frombuffer(base.tobytes()[:n * _itemsize(self.dtype)],
                                 _np_dtype(self.dtype, self.storage.byteorder))
            if self.dtype == BFLOAT16:
                base = (base.astype(np.uint32) << 16).view(np.float32)
            base = base.astype(base.dtype.newbyteorder("="), copy=False)
        numel = math.prod(self.shape)
        if numel == 0:
            return np.zeros(self.shape, base.dtype)
        if numel > MAX_ELEMENTS:  # stride-0 tensors could otherwise ask for any amount of memory
            raise ConversionError(f"{self.storage.source}: tensor of shape {self.shape} is too "
                                  "large for a StyleGAN2 generator")
        last = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.stride, strict=True))
        if self.offset < 0 or min(self.stride, default=0) < 0 or last >= len(base):
            raise ConversionError(
                f"{self.storage.source}: tensor (offset {self.offset}, size {self.shape}, stride "
                f"{self.stride}) reaches past its storage of {len(base)} elements")
        try:
            view = np.lib.stride_tricks.as_strided(
                base[self.offset:], shape=self.shape,
                strides=[s * base.itemsize for s in self.stride], writeable=False)
        except (TypeError, ValueError, OverflowError) as e:  # non-int or huge size / stride
            raise ConversionError(f"{self.storage.source}: bad tensor geometry (size "
                                  f"{self.shape}, stride {self.stride}): {e}") from e
        return np.array(view)


def to_numpy(x: Any, what: str = "tensor") -> np.ndarray:
    """A `TensorRef` (or a numpy array / scalar) as a numpy array."""
    if isinstance(x, TensorRef):
        return x.numpy()
    if isinstance(x, (np.ndarray, np.generic, float, int)):
        return np.asarray(x)
    raise ConversionError(f"{what}: expected a tensor, got {type(x).__name__}")


# --------------------------------------------------------------------- tensor rebuild stand-ins


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    del requires_grad, backward_hooks, metadata
    return TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       dtype, metadata=None):
    del requires_grad, backward_hooks, metadata
    if not isinstance(dtype, TorchDType):
        raise ConversionError(f"_rebuild_tensor_v3 with a non-dtype {dtype!r}")
    return TensorRef(storage, storage_offset, size, stride, dtype=dtype.dtype)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    del requires_grad, backward_hooks
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    del requires_grad, backward_hooks, state
    return data


class _TensorClass:
    """Stand-in for `torch.Tensor` / `torch.nn.Parameter` as arguments of a rebuild."""


def _rebuild_from_type_v2(func, new_type, args, state):
    # `func` is itself an allow-listed stand-in (it came through find_class).
    del new_type, state
    if func not in (_rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter):
        raise ConversionError(f"_rebuild_from_type_v2 with an unexpected function {func!r}")
    return func(*args)


TENSOR_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): _TensorClass,
    ("torch.nn.parameter", "Parameter"): _TensorClass,
    **{("torch", name): TorchDType(name, code) for name, code in TORCH_DTYPES.items()},
}
STORAGE_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch", name): StorageType(name, code) for name, code in STORAGE_DTYPES.items()}
STORAGE_GLOBALS[("torch.storage", "UntypedStorage")] = StorageType("UntypedStorage", "u1")


def _storage_pid(saved_id: Any, source: str) -> tuple[StorageType, str, int, Any]:
    if not isinstance(saved_id, tuple) or len(saved_id) not in (5, 6):
        raise ConversionError(f"{source}: unexpected persistent id {saved_id!r}")
    typename = saved_id[0].decode("ascii") if isinstance(saved_id[0], bytes) else saved_id[0]
    if typename != "storage":
        raise ConversionError(f"{source}: unsupported persistent id type {typename!r}")
    storage_type, key, _location, numel = saved_id[1:5]
    view = saved_id[5] if len(saved_id) == 6 else None
    if not isinstance(storage_type, StorageType):
        raise ConversionError(
            f"{source}: persistent id names {storage_type!r}, not a storage class")
    return storage_type, str(key), numel, view


# --------------------------------------------------------------------- legacy format


def load_legacy(data: bytes, *, source: str, allowed: dict[tuple[str, str], Any]) -> Any:
    """Decodes torch's legacy (non-zip) save format; `allowed` are the object pickle's globals."""
    buf = memoryview(data)
    f = io.BytesIO(data)
    header_globals: dict = {}
    magic = restricted_load(f, allowed=header_globals, source=source)
    if magic != LEGACY_MAGIC:
        raise ConversionError(f"{source}: not a torch legacy serialization (bad magic number)")
    protocol = restricted_load(f, allowed=header_globals, source=source)
    if protocol != LEGACY_PROTOCOL:
        raise ConversionError(f"{source}: unsupported torch legacy protocol {protocol!r}")
    sys_info = restricted_load(f, allowed=header_globals, source=source)
    if not isinstance(sys_info, dict):
        raise ConversionError(f"{source}: corrupt torch legacy header")
    byteorder = "little" if sys_info.get("little_endian", True) else "big"
    roots: dict[str, Storage] = {}
    views: dict[str, Storage] = {}

    def persistent_load(saved_id: Any) -> Storage:
        storage_type, key, numel, view = _storage_pid(saved_id, source)
        if key not in roots:
            roots[key] = Storage(storage_type.dtype, numel, f"{source} (storage {key})", byteorder)
        root = roots[key]
        if view is None:
            return root
        view_key, offset, view_size = view
        if str(view_key) not in views:
            if offset < 0 or offset + view_size > root.numel:
                raise ConversionError(f"{source}: storage view outside its storage")
            views[str(view_key)] = root.view(offset, view_size)
        return views[str(view_key)]

    obj = restricted_load(f, allowed={**allowed, **STORAGE_GLOBALS}, source=source,
                          persistent_load=persistent_load)
    keys = restricted_load(f, allowed=header_globals, source=source)
    if not isinstance(keys, list):
        raise ConversionError(f"{source}: corrupt torch legacy storage key list")
    pos = f.tell()
    for key in keys:
        key = str(key)
        if key not in roots:
            raise ConversionError(f"{source}: storage key {key!r} was never referenced")
        if pos + 8 > len(buf):
            raise ConversionError(f"{source}: truncated storage data (key {key!r})")
        (count,) = struct.unpack("<q", buf[pos:pos + 8])
        pos += 8
        nbytes = count * _itemsize(roots[key].dtype)
        if count != roots[key].numel or pos + nbytes > len(buf):
            raise ConversionError(f"{source}: truncated or inconsistent storage data "
                                  f"(key {key!r}: {count} elements)")
        roots[key].set_bytes(buf[pos:pos + nbytes])
        pos += nbytes
    missing = sorted(set(roots) - {str(k) for k in keys})
    if missing:
        raise ConversionError(f"{source}: storages without data: {missing}")
    return obj


def load_from_bytes_standin(source: str) -> Callable[[bytes], Storage]:
    """Stand-in for `torch.storage._load_from_bytes` (NVIDIA pickles): returns a Storage."""

    def _load_from_bytes(b: Any) -> Storage:
        if not isinstance(b, (bytes, bytearray)):
            raise ConversionError(f"{source}: _load_from_bytes without bytes")
        storage = load_legacy(bytes(b), source=f"{source} (embedded storage)", allowed={})
        if not isinstance(storage, Storage):
            raise ConversionError(f"{source}: embedded storage bytes hold a "
                                  f"{type(storage).__name__}, expected a storage")
        return storage

    return _load_from_bytes


# --------------------------------------------------------------------- zip format


def load_zip(data: bytes, *, source: str, allowed: dict[tuple[str, str], Any]) -> Any:
    """Decodes a torch zip checkpoint (`torch.save` since torch 1.6)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ConversionError(f"{source}: truncated or corrupt zip archive ({e})") from e
    pkls = sorted(n for n in names if n.endswith("/data.pkl") and n.count("/") == 1)
    if len(pkls) != 1:
        raise ConversionError(f"{source}: a torch zip checkpoint holds exactly one <dir>/data.pkl; "
                              f"found {pkls or 'none'}")
    prefix = pkls[0][: -len("data.pkl")]
    byteorder = "little"
    if prefix + "byteorder" in names:
        byteorder = _read(zf, prefix + "byteorder", source).decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise ConversionError(f"{source}: unknown byteorder {byteorder!r}")
    storages: dict[str, Storage] = {}

    def persistent_load(saved_id: Any) -> Storage:
        storage_type, key, numel, _ = _storage_pid(saved_id, source)
        if key not in storages:
            record = f"{prefix}data/{key}"
            if record not in names:
                raise ConversionError(f"{source}: missing tensor record {record}")
            storages[key] = Storage(storage_type.dtype, numel, f"{source} ({record})", byteorder,
                                    loader=lambda: _read(zf, record, source))
        return storages[key]

    pkl = _read(zf, pkls[0], source)
    return restricted_load(io.BytesIO(pkl), allowed={**allowed, **STORAGE_GLOBALS},
                           source=source, persistent_load=persistent_load)


def _read(zf: zipfile.ZipFile, name: str, source: str) -> bytes:
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise ConversionError(f"{source}: corrupt zip record {name} ({e})") from e


# --------------------------------------------------------------------- any checkpoint file


def load_checkpoint(data: bytes, *, source: str, pickle_globals: dict[tuple[str, str], Any],
                    torch_globals: dict[tuple[str, str], Any]) -> tuple[str, Any]:
    """Detects the container and loads it. Returns (container, object).

    container: 'pickle' (NVIDIA snapshot), 'torch-zip' or 'torch-legacy' (torch.save).
    """
    if len(data) == 0:
        raise ConversionError(f"{source}: empty file")
    if data[:4] == b"PK\x03\x04":
        return "torch-zip", load_zip(data, source=source,
                                     allowed={**COMMON_GLOBALS, **TENSOR_GLOBALS, **torch_globals})
    if data.startswith(LEGACY_PREFIX):
        return "torch-legacy", load_legacy(
            data, source=source, allowed={**COMMON_GLOBALS, **TENSOR_GLOBALS, **torch_globals})
    if data[:1] == b"\x80" and 2 <= data[1] <= 5:
        allowed = {**COMMON_GLOBALS, **TENSOR_GLOBALS, **pickle_globals,
                   ("torch.storage", "_load_from_bytes"): load_from_bytes_standin(source)}
        obj = restricted_load(io.BytesIO(data), allowed=allowed, source=source)
        return "pickle", obj
    raise ConversionError(
        f"{source}: unknown file format (first bytes {data[:8]!r}); expected a "
        "stylegan2-ada-pytorch / stylegan3 snapshot .pkl or a rosinality torch .pt checkpoint")
