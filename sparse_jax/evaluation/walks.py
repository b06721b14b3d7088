"""Latent walks: edited latents w + t * d, their images and attribute predictions, batched.

For seeds x directions x signs x distances, every edit is an independent item
(seed index, direction index, signed offset). Items are processed in fixed-size chunks by one
jitted function that draws z from the seed index, maps it to W, adds the offset along the unit
direction (to all ws slots or to a slot range [start, end)), synthesises and predicts. The chunk
axis is sharded over a 1-D device mesh. Seed i's z is `seeds.latents(key, i)` (the one convention
of `sparse_jax.core.seeds`; `key` is the run's IMAGE_STREAM key), so neither the chunk size nor
the number of devices changes what is computed. The generator's and the predictor's weights are
arguments of the jitted step, and every chunk has one shape: one compilation per run.

The unedited image (offset 0) is the same for every direction and sign, so it is computed once
per seed and shared.
"""
from __future__ import annotations

import collections
import functools
from typing import Any, Callable, NamedTuple, Sequence

import jax
import numpy as np
from jax.sharding import Mesh

from sparse_jax.core import resume, sharding, stopping
from sparse_jax.core import seeds as seed_streams
from sparse_jax.io import direction_files
from sparse_jax.models import generators

SIGNS = (1.0, -1.0)
DEFAULT_CHUNK = 256
# Smaller chunks on a CPU, where a chunk's activations stay in cache: on the shipped MNIST models
# chunk 64 ran 500 seeds x 10 directions x 2 signs x 11 distances in 45.1 s against 51.6 s for
# chunk 256 (1.14x; `python bench/walks.py --seeds 500 --repeats 3 --chunk 64` and `--chunk 256`,
# 2026-12-01, 2-core x86_64 CPU, docs/benchmarks.md "Walks").
CPU_CHUNK = 64
_IN_FLIGHT = 2


class WalkResult(NamedTuple):
    """Output of `run_walks`.

    Attributes:
      preds: float32 [S, D, G, T, A] attribute predictions, or None without a predict_fn.
      images: float32 [S, D, G, T, C, H, W] in the generator's range, or None unless asked for.
      offsets: float64 [D, G, T] the signed W distance of each edit (sign_g * t).
    """

    preds: np.ndarray | None
    images: np.ndarray | None
    offsets: np.ndarray


def layer_mask(num_ws: int, layer_range: Sequence[int] | None = None) -> np.ndarray:
    """float32 [num_ws]: 1 on the ws slots [start, end) that an edit changes, else 0.

    Args:
      num_ws: number of ws slots of the generator.
      layer_range: (start, end) with 0 <= start < end <= num_ws, or None for all slots.
    """
    mask = np.zeros(num_ws, np.float32)
    if layer_range is None:
        mask[:] = 1.0
        return mask
    if len(layer_range) != 2:
        raise ValueError(f"layer_range: expected (start, end), got {layer_range!r}")
    start, end = (int(v) for v in layer_range)
    if not 0 <= start < end <= num_ws:
        raise ValueError(f"layer_range: expected 0 <= start < end <= num_ws={num_ws}, "
                         f"got [{start}, {end})")
    mask[start:end] = 1.0
    return mask


def edit_ws(ws: jax.Array, direction: jax.Array, offset: jax.Array, mask: jax.Array) -> jax.Array:
    """One edit: ws + offset * direction on the slots where mask is 1.

    Args:
      ws: [num_ws, w_dim]; direction: [w_dim] unit vector; offset: [] signed distance;
      mask: [num_ws] from `layer_mask`.

    Returns:
      [num_ws, w_dim].
    """
    return ws + (offset * mask)[:, None] * direction[None, :]


def walk_offsets(distances: Any, num_directions: int,
                 signs: Sequence[float] = SIGNS) -> np.ndarray:
    """Signed W offsets [D, G, T] from distances [T] (shared) or [D, T] (per direction)."""
    t = np.asarray(distances, np.float64)
    if t.ndim == 1:
        t = np.broadcast_to(t, (num_directions, t.shape[0]))
    if t.ndim != 2 or t.shape[0] != num_directions or t.shape[1] == 0:
        raise ValueError(f"distances: expected shape [T] or [{num_directions}, T], "
                         f"got {np.shape(distances)}")
    if not np.all(np.isfinite(t)):
        raise ValueError("distances: must be finite")
    s = np.asarray(signs, np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"signs: expected a non-empty list, got {signs!r}")
    return s[None, :, None] * t[:, None, :]


def plan_items(num_seeds: int, offsets: np.ndarray) -> tuple[np.ndarray, ...]:
    """The distinct edits to compute, and where each walk entry finds its result.

    Args:
      num_seeds: S.
      offsets: [D, G, T] signed offsets.

    Returns:
      seed_pos: int32 [N] position in the seed list; dir_idx: int32 [N]; offset: float32 [N];
      inverse: int64 [S, D, G, T] item index of each walk entry. Offset-0 entries of a seed share
      one item.
    """
    d_idx = np.broadcast_to(np.arange(offsets.shape[0])[:, None, None], offsets.shape)
    d_key = np.where(offsets == 0.0, 0, d_idx).astype(np.float64)
    pairs = np.stack([d_key.ravel(), offsets.ravel()], axis=1)
    uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
    inv = np.asarray(inv).reshape(offsets.shape)
    u = uniq.shape[0]
    seed_pos = np.repeat(np.arange(num_seeds), u).astype(np.int32)
    dir_idx = np.tile(uniq[:, 0], num_seeds).astype(np.int32)
    offset = np.tile(uniq[:, 1], num_seeds).astype(np.float32)
    inverse = np.arange(num_seeds)[:, None, None, None] * u + inv[None]
    return seed_pos, dir_idx, offset, inverse


def default_chunk(devices: Sequence[jax.Device] | None = None) -> int:
    """CPU_CHUNK when the walk runs on CPUs, else DEFAULT_CHUNK (accelerators like big batches)."""
    devs = jax.devices() if devices is None else devices
    return CPU_CHUNK if devs and devs[0].platform == "cpu" else DEFAULT_CHUNK


def _make_step(cfg: generators.GeneratorConfig, truncation_psi: float, with_preds: bool,
               with_images: bool) -> Callable:
    """step(variables, predict, key, mask, seeds [B], item_dirs [B, w_dim], offset [B]).

    Each item carries its own unit direction, so the number of directions of a file is not a
    shape of the compiled program: every walk of a run (each method, the reach walk, any file)
    with the same chunk size reuses one compilation.
    """

    def step(variables, predict, key, mask, seeds, item_dirs, offset):
        z = seed_streams.latents(key, seeds, cfg.z_dim)
        ws = generators.map_latents(cfg, variables, z, truncation_psi=truncation_psi)
        ws = jax.vmap(edit_ws, in_axes=(0, 0, 0, None))(ws, item_dirs, offset, mask)
        img = generators.synthesize(cfg, variables, ws, noise_mode="const")
        preds = predict(img) if with_preds else None
        return preds, (img if with_images else None)

    return step


@functools.lru_cache(maxsize=16)
def _compiled_step(cfg: generators.GeneratorConfig, truncation_psi: float, with_preds: bool,
                   with_images: bool, mesh: Mesh) -> Callable:
    data = sharding.data_sharding(mesh)
    repl = sharding.replicated(mesh)
    return jax.jit(
        _make_step(cfg, truncation_psi, with_preds, with_images),
        in_shardings=(repl, repl, repl, repl, data, data, data),
        out_shardings=(data if with_preds else None, data if with_images else None))


def _put(x: np.ndarray, target: Any) -> jax.Array:
    # device_put is an explicit transfer (allowed under transfer_guard("disallow")); several
    # processes need every process's full copy sliced per addressable device instead.
    if jax.process_count() == 1:
        return jax.device_put(x, target)
    return sharding.shard_host_array(x, target)


def as_predictor(predict_fn: Callable | None) -> jax.tree_util.Partial | None:
    """Wraps predict_fn as a pytree so that arrays bound in a `Partial` are jit arguments.

    Pass `jax.tree_util.Partial(f, params)` to keep large classifier weights out of the compiled
    program as constants; a plain callable works too (its closure becomes constants).
    """
    if predict_fn is None or isinstance(predict_fn, jax.tree_util.Partial):
        return predict_fn
    return jax.tree_util.Partial(predict_fn)


def run_walks(cfg: generators.GeneratorConfig, variables: Any, key: jax.Array, seed_indices: Any,
              directions: Any, distances: Any, *, predict_fn: Callable | None = None,
              signs: Sequence[float] = SIGNS, layer_range: Sequence[int] | None = None,
              truncation_psi: float = 1.0, chunk: int | None = None,
              return_images: bool = False,
              devices: Sequence[jax.Device] | None = None, progress: bool = False,
              desc: str = "walks", rows: resume.RowStore | None = None) -> WalkResult:
    """Images and predictions for every seed x direction x sign x distance.

    Args:
      cfg: generator config (unconditional, c_dim == 0).
      variables: generator variables {'params', 'buffers'}.
      key: stream key (`seeds.stream_key(run_seed, seeds.IMAGE_STREAM)` for named seeds); seed
        i uses z = seeds.latents(key, i).
      seed_indices: int [S] seed indices.
      directions: [D, w_dim] directions in W (rows are scaled to unit length).
      distances: [T] or [D, T] unsigned distances along each direction (absolute W units).
      predict_fn: images [B, C, H, W] in [-1, 1] -> [B, A] in [0, 1]; jit-able. A
        `jax.tree_util.Partial` passes its bound arrays as arguments.
      signs: the sign axis G (default +1, -1).
      layer_range: (start, end): edit only ws slots [start, end); None edits all slots.
      truncation_psi: applied to ws before the edit.
      chunk: items per jitted call (rounded up to a multiple of the device count); every call
        has min(chunk, items) rows, the last one padded, so all walks of at least `chunk` items
        compile once. Memory scales with it. None: `default_chunk(devices)`.
      return_images: also return every image (memory: S*D*G*T images on the host).
      devices: devices to shard the chunk axis over (default all).
      progress: a tqdm bar over the chunks, with its time estimate, labelled `desc`.
      rows: where finished predictions are saved and read back, one row per walk item (a
        resumed walk computes only the missing items); predictions only, not images.

    Returns:
      A `WalkResult`.
    """
    if cfg.c_dim:
        raise ValueError(f"walks need an unconditional generator, got c_dim={cfg.c_dim}")
    if predict_fn is None and not return_images:
        raise ValueError("run_walks: pass a predict_fn, return_images=True, or both")
    seeds = np.asarray(seed_indices)
    if seeds.ndim != 1 or seeds.size == 0 or not np.issubdtype(seeds.dtype, np.integer):
        raise ValueError(f"seed_indices: expected a non-empty 1-D integer array, got "
                         f"{seeds.dtype} {seeds.shape}")
    if chunk is None:
        chunk = default_chunk(devices)
    if chunk < 1:
        raise ValueError(f"chunk: expected a positive batch size, got {chunk}")
    dirs = direction_files.check_directions(directions, cfg.w_dim)
    offsets = walk_offsets(distances, dirs.shape[0], signs)
    mask = layer_mask(cfg.num_ws, layer_range)
    seed_pos, dir_idx, offset, inverse = plan_items(seeds.size, offsets)
    item_seed = seeds.astype(np.int32)[seed_pos]

    mesh = sharding.make_data_mesh(devices)
    n_dev = mesh.devices.size
    n_items = item_seed.shape[0]
    # One chunk shape (the last chunk padded with copies of a real item): every walk with at
    # least `chunk` items shares one compilation, however many items or directions it has; a
    # smaller walk runs as one chunk of its own size rather than padding up to `chunk`.
    size = sharding.round_up(min(chunk, n_items), n_dev)
    step = _compiled_step(cfg, float(truncation_psi), predict_fn is not None, return_images, mesh)
    data = sharding.data_sharding(mesh)
    const = sharding.put_replicated((variables, as_predictor(predict_fn), key, mask), mesh)
    if rows is not None and (return_images or predict_fn is None):
        raise ValueError("run_walks: saved rows hold predictions only (no images)")
    todo = np.arange(n_items)
    preds_flat: np.ndarray | None = None
    if rows is not None:
        plan = resume.digest(jax.device_get(jax.random.key_data(key)), item_seed, dirs,
                             dir_idx, offset, mask, np.float64(truncation_psi))
        done, saved = rows.load(n_items, plan)
        if done.any():
            if set(saved) != {"preds"} or saved["preds"].ndim != 2:
                raise resume.RunFolderError(f"{rows.folder}: saved rows are not walk predictions "
                                            f"[items, attributes]; pass --overwrite")
            preds_flat = saved["preds"].astype(np.float32)
            todo = np.nonzero(~done)[0]
    images_out = []
    pending: collections.deque = collections.deque()

    def collect():
        nonlocal preds_flat
        p, img, sel = pending.popleft()
        if p is not None:
            p = sharding.to_host(p)[:sel.size]
            if p.ndim != 2:
                raise ValueError(f"predict_fn: expected outputs of shape [batch, attributes], "
                                 f"got {p.shape[1:]} per chunk")
            if preds_flat is None:
                preds_flat = np.zeros((n_items, p.shape[1]), np.float32)
            preds_flat[sel] = p
            if rows is not None:
                rows.add(sel, preds=p)
        if img is not None:
            images_out.append(sharding.to_host(img)[:sel.size])

    from tqdm.auto import tqdm

    try:
        for lo in tqdm(range(0, todo.size, size), desc=desc, disable=not progress,
                       unit="chunk", leave=False):
            stopping.check()
            sel = todo[lo:lo + size]
            batch = [sharding.pad_batch(a, size)[0]
                     for a in (item_seed[sel], dirs[dir_idx[sel]], offset[sel])]
            batch = [_put(a, data) for a in batch]
            pending.append((*step(*const, *batch), sel))
            # Dispatch is asynchronous: keep one chunk queued behind the running one so the
            # device never waits for the host, while at most _IN_FLIGHT chunks hold device
            # memory.
            if len(pending) >= _IN_FLIGHT:
                collect()
        while pending:
            collect()
    except stopping.StopRequested:
        while pending:  # finished work: keep it
            collect()
        raise
    finally:
        if rows is not None:
            rows.flush()  # an interrupted walk keeps the chunks it finished
    preds = images = None
    if preds_flat is not None:
        preds = preds_flat[inverse]
    if images_out:
        images = np.concatenate(images_out)[inverse]
    return WalkResult(preds=preds, images=images, offsets=offsets)


def _make_mapper(cfg: generators.GeneratorConfig, truncation_psi: float) -> Callable:
    """mapper(variables, key, idx [B]) -> w [B, w_dim] (first ws slot)."""

    def mapper(variables, key, idx):
        z = seed_streams.latents(key, idx, cfg.z_dim)
        return generators.map_latents(cfg, variables, z, truncation_psi=truncation_psi)[:, 0]

    return mapper


@functools.lru_cache(maxsize=16)
def _compiled_mapper(cfg: generators.GeneratorConfig, truncation_psi: float) -> Callable:
    return jax.jit(_make_mapper(cfg, truncation_psi))


def w_pca_stdev(cfg: generators.GeneratorConfig, variables: Any, key: jax.Array, num_samples: int,
                truncation_psi: float = 1.0, chunk: int = 4096) -> float:
    """Std of w along the first principal component of W (the default d_max unit).

    Args:
      cfg, variables: generator.
      key: stream key (`seeds.D_MAX_STREAM` of the run seed); sample i is seeds.latents(key, i).
      num_samples: n >= 2 latents to estimate the covariance from.
      truncation_psi: as in the walks.
      chunk: latents mapped per call (every call has this many rows, the last one padded with
        larger indices whose rows are dropped: one compilation).

    Returns:
      sqrt of the largest eigenvalue of the covariance of w (population normalisation).
    """
    if num_samples < 2:
        raise ValueError(f"num_samples: need at least 2 latents, got {num_samples}")
    if chunk < 1:
        raise ValueError(f"chunk: expected a positive batch size, got {chunk}")
    size = min(int(chunk), int(num_samples))
    mapper = _compiled_mapper(cfg, float(truncation_psi))
    variables, key = jax.device_put((variables, key))
    ws = []
    for lo in range(0, num_samples, size):
        idx = jax.device_put(np.arange(lo, lo + size, dtype=np.int32))
        w = np.asarray(jax.device_get(mapper(variables, key, idx)), np.float64)
        ws.append(w[:num_samples - lo])
    w = np.concatenate(ws)
    cov = np.cov(w, rowvar=False, bias=True)
    return float(np.sqrt(max(np.linalg.eigvalsh(np.atleast_2d(cov))[-1], 0.0)))
