"""Writes NVIDIA TensorFlow StyleGAN pickles without TensorFlow (tests and benchmarks only).

The bytes have the structure NVIDIA's `dnnlib.tflib.network.Network.__getstate__` + `pickle.dump`
produce (spec shared/docs/stylegan-tf-spec.md section 1): a tuple (G, D, Gs) of `Network` objects
pickled as NEWOBJ + BUILD of their state dict, float32 arrays as numpy pickles them
(`numpy.core.multiarray._reconstruct` with numpy 1.x names, or numpy 2's `numpy._core` names),
0-d variables as numpy scalars, protocol 2 to 5. A stand-in `dnnlib.tflib.network` module is
registered in `sys.modules` only while pickling.

`stylegan2_networks` builds a random StyleGAN2 TF (state v4) or StyleGAN2-ADA TF (state v5)
generator from a stylegan2-ada-pytorch-named state (`tf_from_official` applies the inverse of
the converter's table), so a test can check that conversion gives that state back.
"""
from __future__ import annotations

import contextlib
import io
import math
import pickle
import sys
import types
from typing import Any, Iterator, Mapping

import numpy as np

PLACEHOLDER_SRC = "# network source removed from this copy\n"


class Network:
    """Pickles like `dnnlib.tflib.network.Network` (its `__getstate__` returns the state dict)."""

    def __init__(self, state: dict):
        self._state = state

    def __getstate__(self) -> dict:
        return self._state


@contextlib.contextmanager
def _fake_modules(numpy_names: str) -> Iterator[dict]:
    names = ["dnnlib", "dnnlib.tflib", "dnnlib.tflib.network"]
    if numpy_names == "1":
        names.append("numpy.core.multiarray")
    saved = {n: sys.modules.get(n) for n in names}
    mods = {n: types.ModuleType(n) for n in names}
    cls = type("Network", (Network,), {"__module__": "dnnlib.tflib.network"})
    mods["dnnlib.tflib.network"].Network = cls
    fns = {}
    if numpy_names == "1":
        for name in ("_reconstruct", "scalar"):
            def f(*a):  # never called: only named in the pickle
                raise RuntimeError("fixture stand-in")
            f.__module__, f.__qualname__, f.__name__ = "numpy.core.multiarray", name, name
            setattr(mods["numpy.core.multiarray"], name, f)
            fns[name] = f
    else:
        from numpy._core import multiarray
        fns = {"_reconstruct": multiarray._reconstruct, "scalar": multiarray.scalar}
    sys.modules.update(mods)
    try:
        yield {"Network": cls, **fns}
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


class ClaimedArray:
    """An array pickled with any claimed shape / dtype / bytes (for malformed files)."""

    def __init__(self, shape: tuple, raw: bytes = b"", dtype: Any = np.float32,
                 fortran: bool = False):
        self.shape, self.raw, self.dtype, self.fortran = tuple(shape), raw, np.dtype(dtype), fortran


def _as_network(cls: type, obj: Any) -> Any:
    if isinstance(obj, Network):
        state = dict(obj._state)
        if "components" in state:
            state["components"] = {k: _as_network(cls, v) for k, v in state["components"].items()}
        return cls(state)
    return obj


def dumps(nets: tuple, *, protocol: int = 4, numpy_names: str = "1",
          numpy_own_reduce: bool = False) -> bytes:
    """Pickles a tuple of `Network`s (from `network`).

    Args:
      numpy_names: '1' names numpy 1.x's `numpy.core.multiarray` (as NVIDIA's files do), '2' numpy
        2's `numpy._core.multiarray`.
      numpy_own_reduce: let numpy reduce the arrays itself (protocol 5: `_frombuffer`).
    """
    with _fake_modules(numpy_names) as fake:
        cls = fake["Network"]
        top = tuple(_as_network(cls, n) for n in nets)

        class _Pickler(pickle.Pickler):
            def reducer_override(self, obj):
                if isinstance(obj, ClaimedArray):
                    return (fake["_reconstruct"], (np.ndarray, (0,), b"b"),
                            (1, obj.shape, obj.dtype, obj.fortran, obj.raw))
                if numpy_own_reduce:
                    return NotImplemented
                if type(obj) is np.ndarray:
                    fortran = bool(obj.flags.f_contiguous and not obj.flags.c_contiguous)
                    raw = obj.tobytes(order="F" if fortran else "C")
                    return (fake["_reconstruct"], (np.ndarray, (0,), b"b"),
                            (1, obj.shape, obj.dtype, fortran, raw))
                if isinstance(obj, np.generic):
                    return (fake["scalar"], (obj.dtype, obj.tobytes()))
                return NotImplemented

        buf = io.BytesIO()
        _Pickler(buf, protocol=protocol).dump(top)
        return buf.getvalue()


def network(name: str, func: str, kwargs: dict, variables: list, components: dict | None = None,
            *, version: int = 4, src: str = PLACEHOLDER_SRC,
            io_shapes: dict | None = None) -> Network:
    """A Network state as NVIDIA's `__getstate__` writes it (keys of state `version`)."""
    state: dict = {"version": version, "name": name, "static_kwargs": dict(kwargs)}
    if version >= 3:
        state["components"] = dict(components or {})
    state["build_module_src"] = src
    state["build_func_name"] = func
    state["variables"] = [(k, v) for k, v in variables]
    if version >= 5:
        io_shapes = io_shapes or {}
        for key in ("input_shapes", "output_shapes", "input_names", "output_names"):
            state[key] = io_shapes.get(key, [])
    return Network(state)


def _scalar(x) -> np.float32:
    return np.float32(np.asarray(x).reshape(()))


def tf_from_official(st: Mapping[str, np.ndarray], *, img_resolution: int, mapping_layers: int,
                     c_dim: int = 0, use_noise: bool = True) -> tuple[list, list, list]:
    """stylegan2-ada-pytorch-named state -> (G_main own, synthesis, mapping) TF variable lists.

    The inverse of the spec-4 table: `.T` for dense / affine, OIHW -> HWIO, the `Conv0_up` kernel
    flipped, `mod_bias = affine.bias - 1`, `noise{i}` from the noise buffers.
    """
    def hwio(w, flip=False):
        w = np.asarray(w).transpose(2, 3, 1, 0)
        return np.ascontiguousarray(w[::-1, ::-1] if flip else w)

    syn: list = []
    noise: dict[int, np.ndarray] = {}
    log2 = int(math.log2(img_resolution))

    def layer(prefix, tf, up=False, noise_idx=None):
        syn.append((f"{tf}/weight", hwio(st[f"{prefix}.weight"], up)))
        syn.append((f"{tf}/mod_weight", np.ascontiguousarray(st[f"{prefix}.affine.weight"].T)))
        syn.append((f"{tf}/mod_bias", (st[f"{prefix}.affine.bias"] - 1).astype(np.float32)))
        if noise_idx is not None and use_noise:
            syn.append((f"{tf}/noise_strength", _scalar(st[f"{prefix}.noise_strength"])))
            noise[noise_idx] = st[f"{prefix}.noise_const"][None, None]
        syn.append((f"{tf}/bias", st[f"{prefix}.bias"]))

    syn.append(("4x4/Const/const", st["synthesis.b4.const"][None]))
    layer("synthesis.b4.conv1", "4x4/Conv", noise_idx=0)
    layer("synthesis.b4.torgb", "4x4/ToRGB")
    for lr in range(3, log2 + 1):
        r = 2 ** lr
        layer(f"synthesis.b{r}.conv0", f"{r}x{r}/Conv0_up", up=True, noise_idx=2 * lr - 5)
        layer(f"synthesis.b{r}.conv1", f"{r}x{r}/Conv1", noise_idx=2 * lr - 4)
        layer(f"synthesis.b{r}.torgb", f"{r}x{r}/ToRGB")
    # NVIDIA creates the noise inputs first.
    syn = [(f"noise{i}", noise[i]) for i in sorted(noise)] + syn
    mapping: list = []
    if c_dim:
        mapping.append(("LabelEmbed/weight", np.ascontiguousarray(st["mapping.embed.weight"].T)))
        mapping.append(("LabelEmbed/bias", st["mapping.embed.bias"]))
    for i in range(mapping_layers):
        mapping.append((f"Dense{i}/weight", np.ascontiguousarray(st[f"mapping.fc{i}.weight"].T)))
        mapping.append((f"Dense{i}/bias", st[f"mapping.fc{i}.bias"]))
    own = [("dlatent_avg", st["mapping.w_avg"])]
    return own, syn, mapping


def random_official_state(shapes: Mapping[str, tuple], seed: int) -> dict[str, np.ndarray]:
    """Random float32 arrays for official names -> shapes (noise strengths non-zero)."""
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) * (0.3 if "strength" in k else 1.0)
            for k, s in shapes.items()}


def stylegan2_networks(st: Mapping[str, np.ndarray], kwargs: dict, *, img_resolution: int,
                       mapping_layers: int, num_ws: int, c_dim: int = 0, ada: bool = False,
                       use_noise: bool = True, lod: float | None = 0.0, src: str = PLACEHOLDER_SRC,
                       synthesis_func: str | None = None,
                       extra_synthesis_vars: list | None = None) -> tuple:
    """(G, D, Gs) of a StyleGAN2 TF (v4) or StyleGAN2-ADA TF (v5) pickle with Gs = `st`.

    Args:
      kwargs: the static_kwargs the training config passed (copied to every component).
      lod: G_main's `lod` variable (StyleGAN2 TF only; None omits it).
    """
    own, syn, mapping = tf_from_official(st, img_resolution=img_resolution,
                                         mapping_layers=mapping_layers, c_dim=c_dim,
                                         use_noise=use_noise)
    syn = syn + list(extra_synthesis_vars or [])
    version = 5 if ada else 4
    if lod is not None and not ada:
        own = [("lod", np.float32(lod))] + own
    syn_func = synthesis_func or ("G_synthesis" if ada else "G_synthesis_stylegan2")
    z_dim = kwargs.get("latent_size", 512)
    w_dim = kwargs.get("dlatent_size", 512)

    def shapes(inputs, outputs, in_names, out_names):
        return {"input_shapes": inputs, "output_shapes": outputs, "input_names": in_names,
                "output_names": out_names}

    def gen(name, jitter):
        def j(vs):
            return [(k, (v * np.float32(1 + jitter)).astype(np.float32) if isinstance(
                v, np.ndarray) else np.float32(v * (1 + jitter))) for k, v in vs]
        s = network("G_synthesis", syn_func, kwargs, j(syn), version=version, src=src,
                    io_shapes=shapes([[None, num_ws, w_dim]], [[None, 3, img_resolution,
                                                               img_resolution]],
                                     ["dlatents_in"], ["images_out"]))
        m = network("G_mapping", "G_mapping", {"dlatent_broadcast": num_ws, **kwargs}, j(mapping),
                    version=version, src=src,
                    io_shapes=shapes([[None, z_dim], [None, c_dim]], [[None, num_ws, w_dim]],
                                     ["latents_in", "labels_in"], ["dlatents_out"]))
        return network(name, "G_main", kwargs, own, {"synthesis": s, "mapping": m},
                       version=version, src=src,
                       io_shapes=shapes([[None, z_dim], [None, c_dim]],
                                        [[None, 3, img_resolution, img_resolution]],
                                        ["latents_in", "labels_in"], ["images_out"]))

    d = network("D", "D_stylegan2", kwargs, [("Output/weight", np.ones((4, 1), np.float32)),
                                              ("Output/bias", np.zeros(1, np.float32))],
                version=version, src=src)
    return gen("G", 0.05), d, gen("Gs", 0.0)


# Source that would create a file if NVIDIA's loader executed it (as Network.__setstate__ does).
def file_writing_source(marker: str) -> str:
    return (f"open({marker!r}, 'w').write('executed')\n"
            "import os\n"
            f"os.system('touch {marker}')\n"
            "def G_main(*args, **kwargs):\n    raise RuntimeError('never built')\n")
