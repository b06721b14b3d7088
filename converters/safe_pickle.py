"""A restricted unpickler for StyleGAN checkpoints: allow-listed globals only, as stand-ins.

NVIDIA snapshot pickles and torch checkpoints name a handful of globals (spec section 5). Each
allowed name maps to a small stand-in defined here or in `torch_storage`; any other name (for
example `os.system` or `builtins.eval`) raises `UnsafePickleError` from `find_class`, which the
unpickler calls before it could call the global, so nothing from the file is executed. The Python
source that NVIDIA pickles embed (`module_src`) is kept as text and never run.
"""
from __future__ import annotations

import io
import math
import pickle
import reprlib
import struct
from typing import Any, Callable, Mapping

import numpy as np

from converters.errors import ConversionError, UnsafePickleError


class PersistentObject:
    """Stand-in for `torch_utils.persistence._reconstruct_persistent_obj(meta)`.

    Keeps what a converter needs: the class name and the pickled module `__dict__` (`state`,
    with `_parameters`, `_buffers`, `_modules`, `_init_kwargs` and the resolved attributes).
    """

    def __init__(self, meta: Any):
        if not isinstance(meta, dict) or not isinstance(meta.get("state"), dict):
            raise ConversionError("persistent object without a dict 'state' in its meta")
        self.class_name = str(meta.get("class_name"))
        self.version = meta.get("version")
        self.state: dict = meta["state"]
        src = meta.get("module_src")
        self.module_src: str = src if isinstance(src, str) else ""  # text only, never executed

    def __repr__(self) -> str:
        return f"PersistentObject({self.class_name})"


class EasyDict(dict):
    """Stand-in for `dnnlib.util.EasyDict`: a dict with attribute access."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Namespace:
    """Stand-in for `argparse.Namespace` (rosinality training checkpoints keep their `args`)."""

    def __init__(self, **kwargs: Any):
        self.__dict__.update(kwargs)

    def __repr__(self) -> str:
        return f"Namespace({self.__dict__!r})"


# ----------------------------------------------------------------------------- numpy stand-ins
#
# numpy pickles an array as `_reconstruct(ndarray, (0,), b'b')` followed by BUILD with
# `(1, shape, dtype, is_fortran, raw)`, a dtype as `dtype('f4', False, True)` + BUILD
# `(3, '<', None, None, None, -1, -1, 0)`, a scalar as `scalar(dtype, raw)`, and (protocol 5)
# an array as `_frombuffer(buffer, dtype, shape, order)`. The stand-ins below decode those by
# hand: only plain numeric dtypes (never object, structured, string or void ones, which would
# let a file unpickle arbitrary objects), and the raw byte length is checked against the claimed
# shape before anything is allocated, so a header claiming 10^12 elements costs nothing.

MAX_ARRAY_ELEMENTS = 2**31
MAX_ARRAY_NDIM = 32
# Plain numeric type codes (`dtype.str[1:]`); 'b1' is bool.
NUMERIC_DTYPE_CODES = frozenset(
    ["b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"])


class NumpyDType:
    """Stand-in for `numpy.dtype(code, align, copy)`: a vetted plain numeric dtype.

    `dtype` is the numpy dtype (byte order applied once BUILD has given it)."""

    def __init__(self, code: Any = None, align: Any = False, copy: Any = True):
        if not isinstance(code, str):
            raise UnsafePickleError(
                f"refusing numpy dtype {short_repr(code)}: only plain numeric dtypes are accepted")
        code = code.lstrip("<>|=")
        aliases = {"?": "b1", "b": "i1", "B": "u1", "h": "i2", "H": "u2", "i": "i4", "I": "u4",
                   "l": "i8", "L": "u8", "q": "i8", "Q": "u8", "e": "f2", "f": "f4", "d": "f8"}
        code = aliases.get(code, code)
        if code not in NUMERIC_DTYPE_CODES:
            raise UnsafePickleError(
                f"refusing numpy dtype {code!r}: only plain numeric dtypes are accepted (an "
                "object dtype would unpickle arbitrary data)")
        self.code = code
        self.dtype = np.dtype(code)  # native order until BUILD says otherwise

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 2 or not isinstance(state[1], str):
            raise ConversionError(f"corrupt numpy dtype state {short_repr(state)}")
        # (version, byteorder, subdtype, names, fields, elsize, alignment, flags): a plain
        # dtype has no sub-array, names or fields.
        if len(state) >= 5 and any(x is not None for x in state[2:5]):
            raise UnsafePickleError(
                f"refusing a structured / sub-array numpy dtype {short_repr(state)}")
        order = state[1]
        if order not in ("<", ">", "|", "="):
            raise ConversionError(f"corrupt numpy dtype byte order {order!r}")
        self.dtype = np.dtype(self.code).newbyteorder("=" if order == "|" else order)

    def __repr__(self) -> str:
        return f"NumpyDType({self.dtype.str})"


def _as_dtype(dtype: Any, what: str) -> np.dtype:
    if isinstance(dtype, NumpyDType):
        return dtype.dtype
    raise ConversionError(f"corrupt numpy {what}: dtype is a {type(dtype).__name__}")


def _check_shape(shape: Any, what: str) -> tuple[int, ...]:
    if not isinstance(shape, (tuple, list)) or len(shape) > MAX_ARRAY_NDIM or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ConversionError(f"corrupt numpy {what}: shape {short_repr(shape)}")
    shape = tuple(shape)
    n = math.prod(shape)
    if n > MAX_ARRAY_ELEMENTS:
        raise ConversionError(f"numpy {what} claims shape {shape} ({n} elements, more than "
                              f"{MAX_ARRAY_ELEMENTS}); refused without allocating")
    return shape


def decode_array(raw: Any, dtype: np.dtype, shape: tuple[int, ...], fortran: bool,
                 what: str = "array") -> np.ndarray:
    """`raw` bytes -> read-only array view in native byte order, length checked first."""
    if isinstance(raw, (bytearray, memoryview)):
        raw = bytes(raw)
    elif isinstance(raw, str):  # a Python-2 str read with encoding='latin1'
        raw = raw.encode("latin1")
    if not isinstance(raw, bytes):
        raise ConversionError(f"corrupt numpy {what}: data is a {type(raw).__name__}")
    need = math.prod(shape) * dtype.itemsize
    if len(raw) != need:
        raise ConversionError(f"corrupt numpy {what}: shape {shape} of {dtype} needs {need} "
                              f"bytes, the file holds {len(raw)}")
    arr = np.frombuffer(raw, dtype)  # a view of the pickle's bytes: nothing copied
    arr = arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


class NumpyArray:
    """Stand-in for `numpy[._]core.multiarray._reconstruct(ndarray, (0,), b'b')`.

    BUILD's state `(1, shape, dtype, is_fortran, raw)` is decoded by `decode_array`; the array is
    then `.array` (also reachable through `np.asarray(obj)`)."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5 or state[0] != 1:
            raise ConversionError(f"corrupt numpy array state {short_repr(state)}")
        _, shape, dtype, fortran, raw = state
        if not isinstance(fortran, bool):
            raise ConversionError(f"corrupt numpy array state: is_fortran = {short_repr(fortran)}")
        shape = _check_shape(shape, "array")
        self.array = decode_array(raw, _as_dtype(dtype, "array"), shape, fortran)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if self.array is None:
            raise ConversionError("numpy array without data (no BUILD state)")
        return self.array if dtype is None else self.array.astype(dtype)

    def __repr__(self) -> str:
        a = self.array
        return "NumpyArray(empty)" if a is None else f"NumpyArray({a.dtype}, {a.shape})"


class _NDArrayClass:
    """Stand-in for `numpy.ndarray`: only ever an argument of `_reconstruct`."""

    def __repr__(self) -> str:
        return "numpy.ndarray"


NDARRAY = _NDArrayClass()


def numpy_reconstruct(cls: Any = None, shape: Any = None, typecode: Any = None) -> NumpyArray:
    if cls is not NDARRAY:
        raise UnsafePickleError(
            f"refusing numpy _reconstruct of {short_repr(cls)}: only numpy.ndarray is accepted")
    return NumpyArray()


def numpy_frombuffer(buf: Any = None, dtype: Any = None, shape: Any = None,
                     order: Any = "C") -> np.ndarray:
    """Stand-in for `numpy[._]core.numeric._frombuffer` (protocol-5 pickles, in-band data)."""
    if order not in ("C", "F"):
        raise ConversionError(f"corrupt numpy buffer: order {short_repr(order)}")
    shape = _check_shape(shape, "buffer")
    if isinstance(buf, pickle.PickleBuffer):
        buf = buf.raw().tobytes()
    return decode_array(buf, _as_dtype(dtype, "buffer"), shape, order == "F", "buffer")


def _numpy_scalar(dtype: Any = None, data: Any = None) -> np.generic:
    """Stand-in for `numpy[._]core.multiarray.scalar`: decodes a numeric scalar from its bytes."""
    dt = _as_dtype(dtype, "scalar")
    if not isinstance(data, bytes) or len(data) != dt.itemsize:
        raise ConversionError(f"corrupt numpy scalar of dtype {dt}")
    return np.frombuffer(data, dt)[0].astype(dt.newbyteorder("="))


def short_repr(obj: Any) -> str:
    """A bounded repr (safe on deeply nested or huge objects) for error messages."""
    try:
        return _REPR.repr(obj)
    except Exception:  # a hostile __repr__ cannot be defined by a pickle, but stay defensive
        return f"<{type(obj).__name__}>"


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlist = 3, 60, 60, 8


def _codecs_encode(text: Any, encoding: str = "utf-8") -> bytes:
    """Stand-in for `_codecs.encode`, which protocol-2 pickles use to store bytes objects."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode(encoding)


def persistent_object(meta: Any) -> PersistentObject:
    return PersistentObject(meta)


# Globals every supported format may contain: containers and numpy scalars.
COMMON_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): __import__("collections").OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
    ("_codecs", "encode"): _codecs_encode,
    ("numpy", "dtype"): NumpyDType,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,  # pickled with numpy < 2
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,  # pickled with numpy >= 2
}

# numpy arrays (TensorFlow StyleGAN pickles; StyleGAN3 pickles keep some as attributes).
NUMPY_ARRAY_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): NDARRAY,
    ("numpy.core.multiarray", "_reconstruct"): numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): numpy_reconstruct,
    ("numpy.core.numeric", "_frombuffer"): numpy_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): numpy_frombuffer,
}

# NVIDIA snapshot pickles (stylegan2-ada-pytorch, stylegan3): persistent modules and EasyDict.
NVIDIA_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): persistent_object,
    ("dnnlib.util", "EasyDict"): EasyDict,
}

# torch.save checkpoints (rosinality): argparse arguments of training runs.
TORCH_SAVE_GLOBALS: dict[tuple[str, str], Any] = {
    ("argparse", "Namespace"): Namespace,
}


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler whose `find_class` only returns allow-listed stand-ins.

    It derives from the pure-Python unpickler so that BUILD can be guarded too: the C unpickler's
    BUILD would let a file set attributes on the allow-listed classes and functions themselves
    (`(None, {'__setstate__': ...})` slot state), changing how later files in the same process
    are read. Here BUILD is refused on any allow-listed object, class or function; it may only
    fill in objects the file itself created. Reading is still dominated by copying tensor bytes.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: io.IOBase, *, allowed: Mapping[tuple[str, str], Any], source: str,
                 persistent_load: Callable[[Any], Any] | None = None, encoding: str = "ASCII"):
        super().__init__(file, encoding=encoding)
        self._allowed = allowed
        self._allowed_ids = {id(v) for v in allowed.values()}
        self._source = source
        self._persistent_load = persistent_load
        self._file = file
        try:  # the file's size bounds every length a header may claim
            here = file.tell()
            self._size: int | None = file.seek(0, io.SEEK_END)
            file.seek(here)
        except (AttributeError, OSError, ValueError):
            self._size = None

    def _load_bytearray8(self) -> None:
        # The pure-Python unpickler allocates (and zeroes) `bytearray(n)` before reading, so a
        # flipped opcode claiming 2^40 bytes would really take the memory: check n first.
        (n,) = struct.unpack("<Q", self.read(8))
        left = None if self._size is None else self._size - self._file.tell()
        frame = self._unframer.current_frame  # protocol 4+: a frame already read into memory
        if left is not None and frame is not None:
            left += frame.getbuffer().nbytes - frame.tell()
        if left is not None and n > left:
            raise ConversionError(f"{self._source}: a byte array claims {n} bytes, the file has "
                                  f"{left} left (truncated or corrupt)")
        buf = bytearray(n)
        self.readinto(buf)
        self.append(buf)

    dispatch[pickle.BYTEARRAY8[0]] = _load_bytearray8

    def _load_build(self) -> None:
        inst = self.stack[-2] if len(self.stack) >= 2 else None  # below the state
        if (id(inst) in self._allowed_ids or isinstance(inst, type) or callable(inst)
                and not hasattr(type(inst), "__setstate__")):
            raise UnsafePickleError(
                f"{self._source}: refusing BUILD on {short_repr(inst)}: a checkpoint may only "
                "fill in objects it created, not change the allowed classes or functions")
        pickle._Unpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = _load_build

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in self._allowed:
            return self._allowed[key]
        if module == "tfutil" or module.endswith(".tfutil"):
            raise ConversionError(
                f"{self._source}: this is a ProGAN pickle ({module}.{name}); ProGAN networks are "
                "not supported (only StyleGAN v1, StyleGAN2 and StyleGAN2-ADA)")
        if module.startswith("dnnlib.tflib"):
            raise UnsafePickleError(
                f"{self._source}: refusing the TensorFlow global '{module}.{name}': a TensorFlow "
                "StyleGAN pickle only needs dnnlib.tflib.network.Network and numpy arrays; "
                "nothing from this file was executed")
        raise UnsafePickleError(
            f"{self._source}: refusing to load the global '{module}.{name}': a StyleGAN "
            "checkpoint only needs tensors, numpy arrays, containers, numpy scalars and (NVIDIA) "
            "networks or persistent modules; nothing from this file was executed")

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent_load is None:
            raise ConversionError(
                f"{self._source}: unexpected persistent id {pid!r} in a plain pickle")
        return self._persistent_load(pid)


def restricted_load(file: io.IOBase, *, allowed: Mapping[tuple[str, str], Any], source: str,
                    persistent_load: Callable[[Any], Any] | None = None,
                    encoding: str = "ASCII") -> Any:
    """Loads one pickle from `file` with the allow-list; any failure becomes a ConversionError.

    Args:
      encoding: how Python-2 `str` objects are decoded ('latin1' as NVIDIA's TF loader does).
    """
    try:
        return RestrictedUnpickler(file, allowed=allowed, source=source,
                                   persistent_load=persistent_load, encoding=encoding).load()
    except ConversionError as e:
        if str(e).startswith(f"{source}:"):
            raise
        # Raised by a stand-in, which does not know the file name.
        raise type(e)(f"{source}: {e}") from e
    except Exception as e:  # truncated or corrupt input surfaces as many exception types
        raise ConversionError(
            f"{source}: truncated or corrupt pickle ({type(e).__name__}: {e})") from e
