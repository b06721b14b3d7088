"""A restricted unpickler for StyleGAN checkpoints: allow-listed globals only, as stand-ins.

NVIDIA snapshot pickles and torch checkpoints name a handful of globals (spec section 5). Each
allowed name maps to a small stand-in defined here or in `torch_storage`; any other name (for
example `os.system` or `builtins.eval`) raises `UnsafePickleError` from `find_class`, which the
unpickler calls before it could call the global, so nothing from the file is executed. The Python
source that NVIDIA pickles embed (`module_src`) is kept as text and never run.
"""
from __future__ import annotations

import io
import pickle
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


def _numpy_scalar(dtype: Any, data: Any = None) -> np.generic:
    """Stand-in for `numpy[._]core.multiarray.scalar`: decodes a numeric scalar from its bytes."""
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise UnsafePickleError("refusing a numpy object scalar (it would unpickle arbitrary data)")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise ConversionError(f"corrupt numpy scalar of dtype {dtype}")
    return np.frombuffer(data, dtype)[0].copy()


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
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,  # pickled with numpy < 2
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,  # pickled with numpy >= 2
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


class RestrictedUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` whose `find_class` only returns allow-listed stand-ins."""

    def __init__(self, file: io.IOBase, *, allowed: Mapping[tuple[str, str], Any], source: str,
                 persistent_load: Callable[[Any], Any] | None = None):
        super().__init__(file)
        self._allowed = allowed
        self._source = source
        self._persistent_load = persistent_load

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in self._allowed:
            return self._allowed[key]
        if module.startswith("dnnlib.tflib"):
            raise ConversionError(
                f"{self._source}: this is a legacy TensorFlow StyleGAN pickle ({module}.{name}); "
                "only PyTorch checkpoints are supported: convert it first with "
                "stylegan2-ada-pytorch's legacy.py")
        raise UnsafePickleError(
            f"{self._source}: refusing to load the global '{module}.{name}': a StyleGAN2 "
            "checkpoint only needs tensors, containers, numpy scalars and (NVIDIA) persistent "
            "modules; nothing from this file was executed")

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent_load is None:
            raise ConversionError(
                f"{self._source}: unexpected persistent id {pid!r} in a plain pickle")
        return self._persistent_load(pid)


def restricted_load(file: io.IOBase, *, allowed: Mapping[tuple[str, str], Any], source: str,
                    persistent_load: Callable[[Any], Any] | None = None) -> Any:
    """Loads one pickle from `file` with the allow-list; any failure becomes a ConversionError."""
    try:
        return RestrictedUnpickler(file, allowed=allowed, source=source,
                                   persistent_load=persistent_load).load()
    except ConversionError:
        raise
    except Exception as e:  # truncated or corrupt input surfaces as many exception types
        raise ConversionError(
            f"{source}: truncated or corrupt pickle ({type(e).__name__}: {e})") from e
