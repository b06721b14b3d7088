"""NVIDIA TensorFlow StyleGAN pickles (`dnnlib.tflib.network.Network` states), read without TF.

API (spec: shared/docs/stylegan-tf-spec.md section 1):

    nets = load_tf_pickle(data, source)      # tuple[TFNetwork, ...]; (G, D, Gs) for NVIDIA files
    gs = nets[2]
    gs.build_func_name                        # 'G_style', 'G_main', ...
    gs.static_kwargs                          # only the kwargs the training config passed
    gs.variables                              # own variables: local name -> float32 array
    gs.components['synthesis'].variables      # '4x4/Const/const', 'noise0', ...
    gs.flat_variables()                       # 'dlatent_avg', 'lod', 'synthesis/4x4/Const/const',
                                              # 'mapping/Dense0/weight', ... -> float32 arrays

`TFNetwork` fields: name, version (2-5), build_func_name, static_kwargs (plain dict),
variables (dict local name -> float32 ndarray, creation order; 0-d variables such as `lod` and
StyleGAN2's `noise_strength`, stored as numpy scalars, become 0-d arrays), components (dict key ->
TFNetwork, insertion order), build_module_src (str: text only, never executed), input_shapes,
output_shapes, input_names, output_names (state version 5; None before), where (the path used in
messages, e.g. 'Gs.synthesis').

Safety: the file is read by `safe_pickle.RestrictedUnpickler` with an allow-list: the Network
class is an inert stand-in whose `__setstate__` only stores the state dict (NVIDIA's executes
`build_module_src` and builds a TF graph); numpy arrays are decoded by hand from their raw bytes
with the length checked against the claimed shape first; every variable must be float32. Any
other global (e.g. `os.system`) raises `UnsafePickleError` before it could be called. Structural
problems raise `ConversionError` naming the file and the field.
"""
from __future__ import annotations

import dataclasses
import io
from typing import Any, Mapping

import numpy as np

from converters.errors import ConversionError
from converters.safe_pickle import (
    COMMON_GLOBALS,
    NUMPY_ARRAY_GLOBALS,
    EasyDict,
    NumpyArray,
    restricted_load,
    short_repr,
)

SUPPORTED_VERSIONS = (2, 3, 4, 5)
MAX_COMPONENT_DEPTH = 8
_V5_FIELDS = ("input_shapes", "output_shapes", "input_names", "output_names")


class NetworkState:
    """Stand-in for `dnnlib.tflib.network.Network`: keeps the pickled state dict, runs nothing."""

    state: Any = None  # NEWOBJ creates the object without calling __init__

    def __init__(self, *args: Any, **kwargs: Any):
        # Reached only through REDUCE; NVIDIA's pickles use NEWOBJ with no arguments.
        if args or kwargs:
            raise ConversionError("a TensorFlow Network created with constructor arguments "
                                  f"{short_repr(args)}; NVIDIA's pickles pass none")

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        name = self.state.get("name") if isinstance(self.state, dict) else None
        return f"NetworkState({name!r})"


# The globals a TensorFlow StyleGAN pickle may name (spec section 1.3), on top of COMMON_GLOBALS.
TF_GLOBALS: dict[tuple[str, str], Any] = {
    ("dnnlib.tflib.network", "Network"): NetworkState,
    **NUMPY_ARRAY_GLOBALS,
}


@dataclasses.dataclass
class TFNetwork:
    """One `dnnlib.tflib.network.Network` state, checked and decoded (see the module docstring)."""

    name: str
    version: int
    build_func_name: str
    static_kwargs: dict
    variables: dict[str, np.ndarray]
    components: dict[str, "TFNetwork"]
    build_module_src: str  # the embedded Python source, as text; never executed
    input_shapes: list | None = None
    output_shapes: list | None = None
    input_names: list | None = None
    output_names: list | None = None
    where: str = ""

    def flat_variables(self) -> dict[str, np.ndarray]:
        """Own variables under their local names, component variables as `<key>/<local name>`
        (recursively), in creation order: 'lod', 'dlatent_avg', 'synthesis/4x4/Const/const', ..."""
        out = dict(self.variables)
        for key, comp in self.components.items():
            for name, value in comp.flat_variables().items():
                flat = f"{key}/{name}"
                if flat in out:
                    raise ConversionError(f"{self.where}: variable name {flat!r} occurs twice")
                out[flat] = value
        return out

    def describe(self) -> str:
        return f"{self.where} ({self.build_func_name}, state version {self.version})"


def _require(source: str, where: str, state: Mapping, key: str, types: tuple, what: str) -> Any:
    if key not in state:
        raise ConversionError(f"{source}: {where} Network state has no {key!r} ({what})")
    value = state[key]
    if not isinstance(value, types):
        raise ConversionError(f"{source}: {where}.{key} is a {type(value).__name__}, expected "
                              f"{what}")
    return value


def _variable(source: str, where: str, name: str, value: Any) -> np.ndarray:
    if isinstance(value, NumpyArray):
        arr = np.asarray(value)
    elif isinstance(value, np.generic):  # 0-d variables come out of session.run as scalars
        arr = np.asarray(value)
    elif isinstance(value, np.ndarray):  # from numpy_frombuffer (protocol-5 re-saves)
        arr = value
    else:
        raise ConversionError(f"{source}: {where} variable {name!r} is a {type(value).__name__}, "
                              "expected a float32 numpy array")
    if arr.dtype != np.float32:
        raise ConversionError(f"{source}: {where} variable {name!r} has dtype {arr.dtype}, "
                              "expected float32")
    return arr


def _plain(source: str, where: str, value: Any, depth: int = 0) -> Any:
    """A kwargs value as plain Python (lists, tuples, dicts, str, numbers, None)."""
    if depth > 16:
        raise ConversionError(f"{source}: {where} is nested too deeply")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic) and not isinstance(value, np.void):
        return value.item()
    if isinstance(value, (list, tuple)):
        if len(value) > 4096:
            raise ConversionError(f"{source}: {where} is a sequence of {len(value)} items")
        return type(value)(_plain(source, where, v, depth + 1) for v in value)
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ConversionError(f"{source}: {where} has non-string keys")
        return {k: _plain(source, f"{where}.{k}", v, depth + 1) for k, v in value.items()}
    raise ConversionError(f"{source}: {where} holds a {type(value).__name__} "
                          f"({short_repr(value)}); expected plain values")


def _network(source: str, obj: Any, where: str, depth: int, seen: set[int]) -> TFNetwork:
    if not isinstance(obj, NetworkState):
        raise ConversionError(f"{source}: {where} is a {type(obj).__name__}, expected a "
                              "dnnlib.tflib.network.Network")
    if id(obj) in seen:
        raise ConversionError(f"{source}: {where} refers back to one of its own parents")
    if depth > MAX_COMPONENT_DEPTH:
        raise ConversionError(f"{source}: {where}: components nested more than "
                              f"{MAX_COMPONENT_DEPTH} deep")
    state = obj.state
    if not isinstance(state, dict):
        raise ConversionError(f"{source}: {where} is a TensorFlow Network without a state dict "
                              f"(found {type(state).__name__})")
    version = state.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ConversionError(f"{source}: {where}.version is {short_repr(version)}, expected an "
                              "int")
    if version not in SUPPORTED_VERSIONS:
        raise ConversionError(f"{source}: {where} has Network state version {version}; "
                              f"supported: {list(SUPPORTED_VERSIONS)}")
    name = _require(source, where, state, "name", (str,), "a str")
    build_func_name = _require(source, where, state, "build_func_name", (str,), "a str")
    src = _require(source, where, state, "build_module_src", (str,), "a str")
    kwargs = _require(source, where, state, "static_kwargs", (dict,), "a dict")
    kwargs = _plain(source, f"{where}.static_kwargs", dict(kwargs))
    raw_vars = _require(source, where, state, "variables", (list, tuple),
                        "a list of (name, value)")
    variables: dict[str, np.ndarray] = {}
    for i, item in enumerate(raw_vars):
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)):
            raise ConversionError(f"{source}: {where}.variables[{i}] is {short_repr(item)}, "
                                  "expected a (name, value) pair")
        vname, value = item
        if vname in variables:
            raise ConversionError(f"{source}: {where} variable {vname!r} occurs twice")
        variables[vname] = _variable(source, where, vname, value)
    components: dict[str, TFNetwork] = {}
    if version >= 3:
        comps = _require(source, where, state, "components", (dict,), "a dict of Networks")
        for key, comp in comps.items():
            if not isinstance(key, str) or not key or "/" in key:
                raise ConversionError(f"{source}: {where}.components has a bad key "
                                      f"{short_repr(key)}")
            components[key] = _network(source, comp, f"{where}.{key}", depth + 1,
                                       seen | {id(obj)})
    extra: dict[str, Any] = {}
    if version >= 5:
        for key in _V5_FIELDS:
            value = _require(source, where, state, key, (list, tuple), "a list")
            extra[key] = _plain(source, f"{where}.{key}", list(value))
    return TFNetwork(name=name, version=version, build_func_name=build_func_name,
                     static_kwargs=kwargs, variables=variables, components=components,
                     build_module_src=src, where=where, **extra)


TOP_NAMES = ("G", "D", "Gs")


def is_tf_pickle_object(obj: Any) -> bool:
    """Whether an unpickled object is a TensorFlow Network or a tuple/list holding one."""
    if isinstance(obj, NetworkState):
        return True
    return isinstance(obj, (tuple, list)) and any(isinstance(x, NetworkState) for x in obj)


def networks_from_object(obj: Any, source: str) -> tuple[TFNetwork, ...]:
    """The decoded networks of an unpickled TensorFlow pickle (a tuple of Network states)."""
    items = (obj,) if isinstance(obj, NetworkState) else obj
    if not isinstance(items, (tuple, list)) or not items:
        raise ConversionError(f"{source}: expected a tuple of TensorFlow Networks (G, D, Gs), "
                              f"found a {type(obj).__name__}")
    nets = []
    for i, item in enumerate(items):
        where = TOP_NAMES[i] if len(items) == 3 else f"slot {i}"
        nets.append(_network(source, item, where, 0, set()))
    return tuple(nets)


def load_tf_pickle(data: bytes, source: str) -> tuple[TFNetwork, ...]:
    """Reads a TensorFlow StyleGAN pickle (bytes) safely. Returns its networks (G, D, Gs)."""
    if not isinstance(data, (bytes, bytearray)) or len(data) == 0:
        raise ConversionError(f"{source}: empty file")
    allowed = {**COMMON_GLOBALS, **TF_GLOBALS, ("dnnlib.util", "EasyDict"): EasyDict}
    obj = restricted_load(io.BytesIO(data), allowed=allowed, source=source, encoding="latin1")
    if not is_tf_pickle_object(obj):
        raise ConversionError(f"{source}: not a TensorFlow StyleGAN pickle: expected a tuple of "
                              f"dnnlib.tflib.network.Network (G, D, Gs), found "
                              f"{short_repr(obj)}")
    return networks_from_object(obj, source)
