"""The one seed convention: seed lists ('0-7', '1,5,9-11'), the run's key streams, seed -> z.

Every random sample of a run comes from one integer, the run's `--seed`, split into disjoint
streams:

    stream_key(seed, stream) = fold_in(key(seed), stream)

    IMAGE_STREAM       0  named images: `--seeds 0-7` of bin/generate, bin/render (and edit, the
                          explorer), and the evaluation walks (assignment seeds 0..n_a-1, then
                          evaluation seeds n_a..n_a+n_e-1)
    FIT_STREAM         1  discovery: the samples the decompositions are fitted on
    REGRESSION_STREAM  2  discovery: the fresh samples of the regression to W (pca, sca)
    D_MAX_STREAM       3  evaluation: the W sample whose PCA stdev sets the default d_max
    LAT_STDEV_STREAM   4  discovery: fresh samples that measure each direction's lat_stdev
    NOISE_STREAM       5  bin/generate --noise_mode=random
    QUALITY_STREAM     6  sample quality (the generator's quality bar)

and sample i of a stream is

    z_i = normal(fold_in(stream_key(seed, stream), i), (z_dim,))        (`latents`)

so `--seeds 5` with `--seed 0` is one image in every binary, the batch size and the device
count never change which z a sample gets, and no evaluation walk starts from a latent the
directions were fitted on (fit sample i and image i come from different streams).
"""
from __future__ import annotations

import jax
import numpy as np

IMAGE_STREAM = 0
FIT_STREAM = 1
REGRESSION_STREAM = 2
D_MAX_STREAM = 3
LAT_STDEV_STREAM = 4
NOISE_STREAM = 5
QUALITY_STREAM = 6
STREAMS = {"images": IMAGE_STREAM, "fit": FIT_STREAM, "regression": REGRESSION_STREAM,
           "d_max": D_MAX_STREAM, "lat_stdev": LAT_STDEV_STREAM, "noise": NOISE_STREAM,
           "quality": QUALITY_STREAM}
MAX_SEED = 2**31 - 1  # seeds travel as int32 sample indices


def parse_seeds(spec: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]. Raises ValueError naming the bad part."""
    seeds: list[int] = []
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()) or (sep and int(hi) < int(lo)):
            raise ValueError(f"bad seed range {part!r}: expected e.g. '0-7' or '1,5,9-11'")
        if int(hi if sep else lo) > MAX_SEED:
            raise ValueError(f"bad seed range {part!r}: seeds must be <= {MAX_SEED}")
        seeds.extend(range(int(lo), int(hi if sep else lo) + 1))
    if not seeds:
        raise ValueError(f"no seeds in {spec!r}")
    return seeds


def stream_key(seed: int, stream: int) -> jax.Array:
    """fold_in(key(seed), stream): the key of one stream of the run seed `seed`.

    The integers are placed with explicit `device_put`s, so this works under
    `jax.transfer_guard("disallow")`.
    """
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"--seed must be in [0, 2**32), got {seed}")
    if int(stream) not in STREAMS.values():
        raise ValueError(f"unknown seed stream {stream}; known: {STREAMS}")

    def put(x):
        return jax.device_put(np.uint32(x))

    return jax.random.fold_in(jax.random.key(put(seed)), put(stream))


def latents(key: jax.Array, indices: jax.Array, z_dim: int) -> jax.Array:
    """z [B, z_dim]: sample i of the stream `key` is normal(fold_in(key, i)); jit-able.

    Args:
      key: a stream key from `stream_key`.
      indices: int [B] sample indices (seeds); row b depends only on indices[b].
      z_dim: latent width (static).
    """
    return jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), (z_dim,)))(indices)


_latents_jit = jax.jit(latents, static_argnums=2)


def seed_latents(seeds: list[int] | np.ndarray, z_dim: int, run_seed: int = 0) -> np.ndarray:
    """The z of named images: seeds [N] -> float32 [N, z_dim] from the IMAGE_STREAM of run_seed.

    This is the function every binary that takes `--seeds` goes through (generate, render,
    edit, the explorer); the evaluation walks draw the same z for the same index.
    """
    idx = np.asarray(seeds, np.int64)
    if idx.ndim != 1 or idx.size == 0 or idx.min() < 0 or idx.max() > MAX_SEED:
        raise ValueError(f"seeds: expected a non-empty list of integers in [0, {MAX_SEED}], "
                         f"got {list(np.ravel(seeds))[:8]}")
    z = _latents_jit(stream_key(run_seed, IMAGE_STREAM),
                     jax.device_put(idx.astype(np.int32)), int(z_dim))
    return np.asarray(jax.device_get(z), np.float32)
