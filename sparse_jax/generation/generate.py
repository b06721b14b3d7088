"""The work behind bin/generate: latents from seeds or files -> PNG grid or raw .npz.

`--seeds 0-7` goes through `sparse_jax.core.seeds.seed_latents` (the run seed's IMAGE_STREAM), the
same images as bin/render and the evaluation walks with the same `--seed`. The generator's
weights are arguments of the two jitted functions (mapping, synthesis), never constants in them,
and every batch has `batch` rows (the last one padded and cut): one compilation per run.
"""
from __future__ import annotations

import functools
import os

import jax
import numpy as np

from sparse_jax.core import atomic, images, seeds, sharding
from sparse_jax.core.seeds import NOISE_STREAM, parse_seeds, stream_key
from sparse_jax.io import model_dirs
from sparse_jax.models import generators


def _load_npy(path: str, what: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} file {path} does not exist")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:
        raise ValueError(f"{path}: not a readable .npy array ({e})") from e
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{path}: contains NaN or Inf")
    return arr.astype(np.float32)


def resolve_latents(cfg: generators.GeneratorConfig, seeds_spec: str | None, z_file: str | None,
                    ws_file: str | None, seed: int = 0) -> tuple[str, np.ndarray]:
    """Exactly one of seeds / z / ws. Returns ('z', [N,z_dim]) or ('ws', [N,num_ws,w_dim]).

    `seed` is the run seed whose IMAGE_STREAM the seeds index (`seeds.seed_latents`).
    """
    given = [n for n, v in (("--seeds", seeds_spec), ("--z", z_file), ("--ws", ws_file)) if v]
    if len(given) != 1:
        raise ValueError(f"pass exactly one of --seeds, --z, --ws (got {given or 'none'})")
    if seeds_spec:
        return "z", seeds.seed_latents(seeds.parse_seeds(seeds_spec), cfg.z_dim, seed)
    if z_file:
        z = _load_npy(z_file, "--z")
        if z.ndim != 2 or z.shape[1] != cfg.z_dim:
            raise ValueError(f"--z {z_file}: expected shape [N, {cfg.z_dim}], got {z.shape}")
        return "z", z
    ws = _load_npy(ws_file, "--ws")
    if ws.ndim == 2 and ws.shape[1] == cfg.w_dim:
        ws = np.repeat(ws[:, None], cfg.num_ws, axis=1)
    if ws.ndim != 3 or ws.shape[1:] != (cfg.num_ws, cfg.w_dim):
        raise ValueError(f"--ws {ws_file}: expected shape [N, {cfg.num_ws}, {cfg.w_dim}] "
                         f"(or [N, {cfg.w_dim}]), got {ws.shape}")
    return "ws", ws


def _make_mapper(cfg, truncation_psi, truncation_cutoff):
    """mapper(variables, z [B, z_dim], c [B, c_dim] or None) -> ws [B, num_ws, w_dim]."""

    def mapper(variables, z, c):
        return generators.map_latents(cfg, variables, z, c, truncation_psi, truncation_cutoff)

    return mapper


def _make_synth(cfg, noise_mode):
    """synth(variables, ws [B, num_ws, w_dim], key or None) -> images [B, C, H, W]."""

    def synth(variables, ws, key):
        return generators.synthesize(cfg, variables, ws, noise_mode=noise_mode, key=key)

    return synth


@functools.lru_cache(maxsize=8)
def _compiled(cfg, truncation_psi, truncation_cutoff, noise_mode):
    return (jax.jit(_make_mapper(cfg, truncation_psi, truncation_cutoff)),
            jax.jit(_make_synth(cfg, noise_mode)))


def render(cfg, variables, kind, latents, *, truncation_psi=1.0, truncation_cutoff=None,
           noise_mode="const", class_idx=None, key=None, batch=16):
    """Returns (images [N,C,H,W] float32, ws [N,num_ws,w_dim]).

    Args:
      kind, latents: from `resolve_latents` ('z' [N, z_dim] or 'ws' [N, num_ws, w_dim]).
      key: noise key for noise_mode='random' (batch i of `batch` rows uses fold_in(key, i)).
      batch: rows per jitted call; the last batch is padded (one compilation per run).
    """
    if kind == "ws" and class_idx is not None:
        raise ValueError("--class_idx has no effect with --ws: the label is already inside the ws")
    if kind == "z" and cfg.c_dim and class_idx is None:
        raise ValueError(f"conditional generator (c_dim={cfg.c_dim}): pass --class_idx with "
                         "--seeds or --z")
    if class_idx is not None and not 0 <= class_idx < max(cfg.c_dim, 1):
        raise ValueError(f"--class_idx must be in [0, {cfg.c_dim}), got {class_idx}")
    if batch < 1:
        raise ValueError(f"--batch must be >= 1, got {batch}")
    n = len(latents)
    if n == 0:
        raise ValueError("no latents to render")
    size = min(int(batch), n)
    mapper, synth = _compiled(cfg, float(truncation_psi), truncation_cutoff, noise_mode)
    variables = jax.device_put(variables)
    c = None
    if cfg.c_dim and kind == "z":
        c = jax.device_put(np.broadcast_to(
            np.eye(cfg.c_dim, dtype=np.float32)[class_idx], (size, cfg.c_dim)))
    imgs, all_ws = [], []
    for i in range(0, n, size):
        chunk, _ = sharding.pad_batch(np.asarray(latents[i:i + size], np.float32), size)
        chunk = jax.device_put(chunk)
        ws = mapper(variables, chunk, c) if kind == "z" else chunk
        k = None if key is None else jax.random.fold_in(key, jax.device_put(np.uint32(i)))
        m = min(size, n - i)
        imgs.append(np.asarray(jax.device_get(synth(variables, ws, k)))[:m])
        all_ws.append(np.asarray(jax.device_get(ws))[:m])
    return np.concatenate(imgs), np.concatenate(all_ws)


def run(generator: str | None, out: str, seeds: str | None = None, z_file: str | None = None,
        ws_file: str | None = None, truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None, noise_mode: str = "const",
        class_idx: int | None = None, seed: int = 0, batch: int = 16,
        cols: int | None = None, scale: int = 1, labels: bool = False) -> str:
    ext = os.path.splitext(out)[1].lower()
    if ext not in (".png", ".npz"):
        raise ValueError(f"--out must end in .png or .npz, got {out!r}")
    cfg, variables = model_dirs.load_generator(generator or model_dirs.default_generator_path())
    kind, latents = resolve_latents(cfg, seeds, z_file, ws_file, seed)
    key = stream_key(seed, NOISE_STREAM) if noise_mode == "random" else None
    imgs, ws = render(cfg, variables, kind, latents, truncation_psi=truncation_psi,
                      truncation_cutoff=truncation_cutoff, noise_mode=noise_mode,
                      class_idx=class_idx, key=key, batch=batch)
    if ext == ".npz":
        atomic.save_npz(out, images=imgs, ws=ws)
    else:
        ncols = cols or int(np.ceil(np.sqrt(len(imgs))))
        grid = images.make_grid(imgs, ncols, scale=scale)
        if labels:
            names = ([f"seed {s}" for s in parse_seeds(seeds)] if seeds is not None
                     else [f"{kind} {i}" for i in range(len(imgs))])
            side = cfg.img_resolution * scale
            grid = images.label_grid(grid, names, (side, side), ncols)
        atomic.write_bytes(out, images.png_bytes(grid))
    print(f"wrote {len(imgs)} images of {cfg.img_channels}x{cfg.img_resolution}x"
          f"{cfg.img_resolution} to {out}")
    return out
