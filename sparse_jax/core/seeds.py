"""Parsing seed lists ('0-7', '1,5,9-11') and turning seeds into latents."""
from __future__ import annotations

import jax
import jax.numpy as jnp


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
        seeds.extend(range(int(lo), int(hi if sep else lo) + 1))
    if not seeds:
        raise ValueError(f"no seeds in {spec!r}")
    return seeds


def latents_from_seeds(seeds: list[int], z_dim: int) -> jax.Array:
    """One standard-normal z per seed: row i depends only on seeds[i]. Returns [N, z_dim]."""
    keys = jnp.stack([jax.random.key_data(jax.random.key(s)) for s in seeds])
    return jax.vmap(lambda k: jax.random.normal(jax.random.wrap_key_data(k), (z_dim,)))(keys)
