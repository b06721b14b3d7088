"""The work behind bin/generate: latents from seeds or files -> PNG grid or raw .npz."""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from sparse_jax.core import atomic, images, seeds
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
                    ws_file: str | None) -> tuple[str, np.ndarray]:
    """Exactly one of seeds / z / ws. Returns ('z', [N,z_dim]) or ('ws', [N,num_ws,w_dim])."""
    given = [n for n, v in (("--seeds", seeds_spec), ("--z", z_file), ("--ws", ws_file)) if v]
    if len(given) != 1:
        raise ValueError(f"pass exactly one of --seeds, --z, --ws (got {given or 'none'})")
    if seeds_spec:
        return "z", np.asarray(seeds.latents_from_seeds(seeds.parse_seeds(seeds_spec), cfg.z_dim))
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


def render(cfg, variables, kind, latents, *, truncation_psi=1.0, truncation_cutoff=None,
           noise_mode="const", class_idx=None, key=None, batch=16):
    """Returns (images [N,C,H,W] float32, ws [N,num_ws,w_dim])."""
    if cfg.c_dim and class_idx is None:
        raise ValueError(f"conditional generator (c_dim={cfg.c_dim}): pass --class_idx")
    if class_idx is not None and not 0 <= class_idx < max(cfg.c_dim, 1):
        raise ValueError(f"--class_idx must be in [0, {cfg.c_dim}), got {class_idx}")

    @jax.jit
    def to_ws(z):
        c = None
        if cfg.c_dim:
            c = jnp.broadcast_to(jax.nn.one_hot(class_idx, cfg.c_dim), (z.shape[0], cfg.c_dim))
        return generators.map_latents(cfg, variables, z, c, truncation_psi, truncation_cutoff)

    synth = jax.jit(functools.partial(generators.synthesize, cfg, noise_mode=noise_mode))
    imgs, all_ws = [], []
    for i in range(0, len(latents), batch):
        chunk = jnp.asarray(latents[i:i + batch])
        ws = to_ws(chunk) if kind == "z" else chunk
        k = None if key is None else jax.random.fold_in(key, i)
        imgs.append(np.asarray(synth(variables, ws, key=k)))
        all_ws.append(np.asarray(ws))
    return np.concatenate(imgs), np.concatenate(all_ws)


def run(generator: str | None, out: str, seeds: str | None = None, z_file: str | None = None,
        ws_file: str | None = None, truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None, noise_mode: str = "const",
        class_idx: int | None = None, seed: int = 0, batch: int = 16,
        cols: int | None = None) -> str:
    ext = os.path.splitext(out)[1].lower()
    if ext not in (".png", ".npz"):
        raise ValueError(f"--out must end in .png or .npz, got {out!r}")
    cfg, variables = model_dirs.load_generator(generator or model_dirs.default_generator_path())
    kind, latents = resolve_latents(cfg, seeds, z_file, ws_file)
    key = jax.random.key(seed) if noise_mode == "random" else None
    imgs, ws = render(cfg, variables, kind, latents, truncation_psi=truncation_psi,
                      truncation_cutoff=truncation_cutoff, noise_mode=noise_mode,
                      class_idx=class_idx, key=key, batch=batch)
    if ext == ".npz":
        atomic.save_npz(out, images=imgs, ws=ws)
    else:
        atomic.write_bytes(out, images.png_bytes(images.make_grid(imgs, cols)))
    print(f"wrote {len(imgs)} images of {cfg.img_channels}x{cfg.img_resolution}x"
          f"{cfg.img_resolution} to {out}")
    return out
