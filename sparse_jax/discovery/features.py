"""Sampled generator activations, max-pooled over space (the paper's scalable semantic search).

`sample_features` draws n latents, maps them to W, runs synthesis only as deep as the deepest
requested layer and keeps, per sample, the max over space of each channel (or of each cell of an
s x s grid), concatenated over layers. Only the pooled features [n, p] and the latents [n, w_dim]
are kept; activations live for one batch, so peak memory grows with the batch, not with n.

Sample i's z is `seeds.latents(key, i)` = `normal(fold_in(key, i))` (the convention of
`sparse_jax.core.seeds`; `key` is a stream key of the run seed): it depends on the global index
only, so the batch size and the number of devices never change which samples are drawn.

One compilation per call (and per configuration across calls): the last, ragged batch is padded
with real, larger indices and its rows dropped; weights, the key and the label function's
parameters are arguments of the jitted step, never constants baked into it.
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from sparse_jax.core import resume, seeds, sharding, stopping
from sparse_jax.models import generators

POOL_GLOBAL = 1  # grid size 1 = one global max per channel


class Features(NamedTuple):
    """Output of `sample_features`.

    Attributes:
      x: [n, p] float32 pooled features, p = sum over layers of C * s * s.
      w: [n, w_dim] float32 latents (first style vector: all equal unless truncation_cutoff).
      labels: [n] int labels from `label_fn`, or None.
    """

    x: np.ndarray
    w: np.ndarray
    labels: np.ndarray | None


class BatchOutOfMemory(RuntimeError):
    """A batch did not fit in (device) memory; the message says to lower the batch size."""


def synthesis_layer_names(cfg: generators.GeneratorConfig) -> list[str]:
    """Every official synthesis-network layer name of `cfg` (what `resolve_layers` accepts)."""
    return list(generators.synthesis_layer_names(cfg))


def default_layers(cfg: generators.GeneratorConfig) -> tuple[str, ...]:
    """`conv1` of the blocks at 1/4 and 1/2 of the output resolution (b8, b16 for a 32x32 G;
    the first block, b4, is the smallest there is)."""
    res = cfg.img_resolution
    return tuple(dict.fromkeys(f"synthesis.b{max(res // f, 4)}.conv1" for f in (4, 2)))


def resolve_layers(cfg: generators.GeneratorConfig, layers: Sequence[str] | str | None
                   ) -> tuple[str, ...]:
    """Validates layer names, accepting short forms ("b8.conv1" for "synthesis.b8.conv1").

    Args:
      cfg: generator config.
      layers: names, a comma-separated string, or None/empty for `default_layers(cfg)`.

    Returns:
      Full official names, duplicates removed, in the given order.

    Raises:
      ValueError: an unknown name; the message lists the valid ones.
    """
    if layers is None or (isinstance(layers, str) and not layers.strip()):
        return default_layers(cfg)
    if isinstance(layers, str):
        layers = [s for s in (t.strip() for t in layers.split(",")) if s]
    if not layers:
        return default_layers(cfg)
    valid = synthesis_layer_names(cfg)
    valid_set = set(valid)
    out: list[str] = []
    for name in layers:
        full = name if name.startswith("synthesis.") else "synthesis." + name
        if full not in valid_set:
            raise ValueError(
                f"unknown layer {name!r} for a {cfg.img_resolution}x{cfg.img_resolution} "
                "generator; "
                f"valid layers (the 'synthesis.' prefix is optional): {', '.join(valid)}"
            )
        if full not in out:
            out.append(full)
    return tuple(out)


def parse_pool(spec: str | int) -> int:
    """Parses a pooling spec: "global"/"max"/1 -> 1 (global max); "grid4"/"4"/4 -> 4x4 grid."""
    if isinstance(spec, (int, np.integer)):
        s = int(spec)
    else:
        text = str(spec).strip().lower()
        if text in ("global", "max", "gmax"):
            return POOL_GLOBAL
        text = text.removeprefix("grid").removeprefix(":")
        try:
            s = int(text)
        except ValueError:
            raise ValueError(
                f"bad pooling spec {spec!r}: expected 'global' or 'gridS' / S (an S x S grid)"
            ) from None
    if s < 1:
        raise ValueError(f"bad pooling spec {spec!r}: grid size must be >= 1")
    return s


def pool_name(grid: int) -> str:
    """Inverse of `parse_pool` for file metadata: 1 -> "global", 4 -> "grid4"."""
    return "global" if grid == POOL_GLOBAL else f"grid{grid}"


def max_pool(act: jax.Array, grid: int = POOL_GLOBAL) -> jax.Array:
    """Max-pools an activation over space.

    Args:
      act: [N, C, H, W] (NCHW) or [N, C] (non-spatial, e.g. an affine's styles: returned as is).
      grid: 1 for one global max per channel; s for an s x s grid of maxima (H, W divisible by s).

    Returns:
      [N, C * grid * grid] ordered channel-major (c, gy, gx).
    """
    if act.ndim == 2:
        return act
    if act.ndim != 4:
        raise ValueError(f"max_pool: expected [N, C, H, W] or [N, C], got shape {act.shape}")
    n, c, h, w = act.shape
    if grid == POOL_GLOBAL:
        return jnp.max(act, axis=(2, 3))
    if h % grid or w % grid:
        raise ValueError(f"max_pool: a {grid}x{grid} grid does not divide a {h}x{w} activation")
    cells = act.reshape(n, c, grid, h // grid, grid, w // grid)
    return jnp.max(cells, axis=(3, 5)).reshape(n, c * grid * grid)


def pool_features(acts: dict[str, jax.Array], layers: Sequence[str], grid: int) -> jax.Array:
    """Concatenates `max_pool(acts[name], grid)` over `layers` (in order): [N, p]."""
    return jnp.concatenate([max_pool(acts[name], grid) for name in layers], axis=-1)


def feature_dim(cfg: generators.GeneratorConfig, layers: Sequence[str], grid: int) -> int:
    """p, the width of the pooled features, computed without running the generator."""
    variables = generators.abstract_variables(cfg)
    fn = _make_step(cfg, tuple(layers), grid, 1.0, False)
    out = jax.eval_shape(fn, variables, jax.random.key(0), jnp.zeros((1,), jnp.int32), None)
    return int(out[0].shape[-1])


def _make_step(
    cfg: generators.GeneratorConfig,
    layers: tuple[str, ...],
    grid: int,
    truncation: float,
    with_labels: bool,
) -> Callable:
    """step(variables, key, idx [B], label_fn) -> (features [B, p], w [B, w_dim], labels or None).

    `label_fn` is a `jax.tree_util.Partial` (its bound arrays are traced arguments) or None.
    """

    def step(variables, key, idx, label_fn):
        z = seeds.latents(key, idx, cfg.z_dim)
        ws = generators.map_latents(cfg, variables, z, truncation_psi=truncation)
        if with_labels:
            img, acts = generators.synthesize(cfg, variables, ws, noise_mode="const", layers=layers)
            labels = jnp.asarray(label_fn(img)).astype(jnp.int32)
        else:
            labels = None
            acts = generators.synthesize(
                cfg, variables, ws, noise_mode="const", layers=layers, return_image=False
            )
        return pool_features(acts, layers, grid), ws[:, 0], labels

    return step


@functools.lru_cache(maxsize=16)
def _compiled_step(
    cfg: generators.GeneratorConfig,
    layers: tuple[str, ...],
    grid: int,
    truncation: float,
    with_labels: bool,
    mesh: Mesh,
) -> Callable:
    """The jitted step with its shardings; cached so repeated calls reuse the compilation."""
    data = sharding.data_sharding(mesh)
    repl = sharding.replicated(mesh)
    return jax.jit(
        _make_step(cfg, layers, grid, truncation, with_labels),
        in_shardings=(repl, repl, data, repl),
        out_shardings=(data, data, data if with_labels else None),
    )


def as_label_fn(label_fn: Callable | None) -> jax.tree_util.Partial | None:
    """label_fn as a pytree: pass `jax.tree_util.Partial(f, params)` so that the classifier's
    weights are arguments of the compiled step; a plain jit-able callable works too."""
    if label_fn is None or isinstance(label_fn, jax.tree_util.Partial):
        return label_fn
    return jax.tree_util.Partial(label_fn)


def _check_saved(saved: dict[str, np.ndarray], w_dim: int, with_labels: bool, where: str
                 ) -> None:
    want = {"x", "w"} | ({"labels"} if with_labels else set())
    if set(saved) != want or saved["w"].shape[1:] != (w_dim,):
        raise resume.RunFolderError(f"{where}: saved samples hold {sorted(saved)} (w of shape "
                                    f"{saved.get('w', np.zeros((0,))).shape[1:]}), expected "
                                    f"{sorted(want)} with w of {w_dim}; pass --overwrite")


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, MemoryError) or "RESOURCE_EXHAUSTED" in str(err)


def sample_features(
    cfg: generators.GeneratorConfig,
    variables: dict,
    key: jax.Array,
    num_samples: int,
    *,
    layers: Sequence[str] | str | None = None,
    pool: int | str = POOL_GLOBAL,
    batch_size: int = 256,
    truncation: float = 1.0,
    mesh: Mesh | None = None,
    label_fn: Callable[[jax.Array], jax.Array] | None = None,
    progress: bool = True,
    desc: str = "features",
    rows: resume.RowStore | None = None,
) -> Features:
    """Samples latents and returns their max-pooled features, streamed batch by batch.

    Args:
      cfg: generator config (static).
      variables: generator variables {'params', 'buffers'}.
      key: a stream key (`seeds.stream_key`); sample i is `seeds.latents(key, i)`, so use
        another stream for fresh samples.
      num_samples: n >= 1 (the paper uses 10,000; up to ~1e6 fits in host memory for small p).
      layers: synthesis layer names (short forms accepted); None for `default_layers(cfg)`.
      pool: 1/"global" for one max per channel, s/"grid{s}" for an s x s grid per channel.
      batch_size: samples per jitted step (rounded up to a multiple of the mesh size).
      truncation: truncation psi applied when mapping z -> w.
      mesh: 1-D data mesh (default: all devices); the batch axis is sharded over it.
      label_fn: optional jit-able images [B, C, H, W] -> int labels [B], run inside the step
        (a `jax.tree_util.Partial` passes its bound weights as arguments); forces full-depth
        synthesis.
      progress: show a tqdm bar.
      desc: label of the progress bar.
      rows: where finished samples are saved and read back (a resumed run computes only the
        samples missing there; sample i is the same whatever the batching).

    Returns:
      Features(x [n, p], w [n, w_dim], labels [n] or None), host float32 arrays.

    Raises:
      ValueError: bad layer name, pooling spec, or sizes.
      BatchOutOfMemory: a batch did not fit; lower the batch size.
    """
    from tqdm.auto import tqdm

    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if cfg.c_dim:
        raise ValueError(
            f"conditional generators (c_dim={cfg.c_dim}) are not supported by feature sampling"
        )
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    names = resolve_layers(cfg, layers)
    grid = parse_pool(pool)
    mesh = sharding.make_data_mesh() if mesh is None else mesh
    batch = sharding.round_up(min(batch_size, num_samples), mesh.size)
    step = _compiled_step(cfg, names, grid, float(truncation), label_fn is not None, mesh)
    data = sharding.data_sharding(mesh)
    variables, key, label_fn = sharding.put_replicated((variables, key, as_label_fn(label_fn)),
                                                       mesh)

    x_out: np.ndarray | None = None
    w_out = np.empty((num_samples, cfg.w_dim), np.float32)
    labels = np.empty((num_samples,), np.int64) if label_fn is not None else None
    todo = np.arange(num_samples, dtype=np.int32)
    if rows is not None:
        plan = resume.digest(jax.device_get(jax.random.key_data(key)), np.asarray(names),
                             np.asarray([grid, truncation, label_fn is not None]))
        done, saved = rows.load(num_samples, plan)
        if done.any():
            _check_saved(saved, cfg.w_dim, labels is not None, rows.folder)
            x_out = saved["x"].astype(np.float32)
            w_out[done] = saved["w"][done]
            if labels is not None:
                labels[done] = saved["labels"][done]
            todo = np.nonzero(~done)[0].astype(np.int32)

    def collect(idx, n_valid, result):
        nonlocal x_out
        feats, w, lab = result
        feats = sharding.to_host(feats)[:n_valid]
        w = sharding.to_host(w)[:n_valid]
        idx = idx[:n_valid]
        if x_out is None:
            x_out = np.empty((num_samples, feats.shape[1]), np.float32)
        x_out[idx] = feats
        w_out[idx] = w
        got = {"x": feats, "w": w}
        if labels is not None:
            got["labels"] = labels[idx] = sharding.to_host(lab)[:n_valid]
        if rows is not None:
            rows.add(idx, **got)

    pending = None
    try:
        for start in tqdm(range(0, todo.size, batch), desc=desc, disable=not progress,
                          unit="batch"):
            stopping.check()
            idx = todo[start : start + batch]
            n_valid = idx.size
            # Padded rows get real (larger) indices so every batch has one shape: no recompiles.
            idx = np.concatenate([idx, np.arange(num_samples, num_samples + batch - n_valid,
                                                 dtype=np.int32)])
            result = step(variables, key, sharding.shard_host_array(idx, data), label_fn)
            # Dispatch is asynchronous: fetch the previous batch while this one runs.
            if pending is not None:
                collect(*pending)
            pending = (idx, n_valid, result)
        if pending is not None:
            collect(*pending)
    except stopping.StopRequested:
        if pending is not None:  # finished work: keep it
            collect(*pending)
        raise
    except (MemoryError, RuntimeError) as err:
        if isinstance(err, BatchOutOfMemory) or not _is_oom(err):
            raise
        raise BatchOutOfMemory(
            f"out of memory with a batch of {batch} samples ({mesh.size} device(s)); "
            "lower the batch size (--batch)"
        ) from err
    finally:
        if rows is not None:
            rows.flush()  # an interrupted run keeps the samples it finished
    assert x_out is not None
    return Features(x=x_out, w=w_out, labels=labels)
