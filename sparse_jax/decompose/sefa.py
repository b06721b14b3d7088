"""SeFa (Shen & Zhou, "Closed-form factorization of latent semantics in GANs", CVPR 2021).

    from sparse_jax.decompose import sefa
    res = sefa(cfg, variables, k=10, layers="all")   # or "0-3", "0-1,5", [0, 2], or names
    res.components [k, w_dim] (unit rows), res.eigenvalues [k], res.layers (official names)

What SeFa computes: the style affine of every chosen synthesis layer maps w to styles, s = A w + b.
Stack the chosen layers' affine weights (official layout [C, w_dim] each) into A [sum C, w_dim],
normalise every row (one style channel) to unit L2 norm, and return the top-k eigenvectors of
A^T A [w_dim, w_dim]: the unit directions n in W that maximise sum ||A n||^2. The per-layer
equalised-lr gains of the official code are one scalar per layer, so the row normalisation
removes them and the raw stored weights can be used.

Choices, relative to the authors' genforce/sefa code:
  * `layers="all"` is genforce's default: the num_ws style layers in synthesis order, i.e. every
    conv (b4.conv1, b8.conv0, b8.conv1, ...) followed by the LAST block's torgb (intermediate
    torgb layers are not part of it). Index i of that order uses ws[:, i]. Ranges like "0-3" and
    comma lists ("0-1,5") index the same order; explicit official names may add any torgb.
  * genforce uses the general `np.linalg.eig` on the symmetric PSD matrix and keeps LAPACK's
    order; here `eigh` (the symmetric solver) with eigenvalues explicitly sorted descending,
    which is what the paper describes (top-k eigenvectors).
  * eigenvector signs are arbitrary in both; here the largest-|.| entry of each is positive.
"""
from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sparse_jax.decompose.pca import sign_by_max_abs

Array = jax.Array


@functools.partial(jax.tree_util.register_dataclass, data_fields=["components", "eigenvalues"],
                   meta_fields=["layers"])
@dataclasses.dataclass(frozen=True)
class SeFaResult:
    """components [k, w_dim] unit rows; eigenvalues [k] descending; layers (static): names used."""

    components: Array
    eigenvalues: Array
    layers: tuple[str, ...] = ()


def sefa_from_weights(weights: Array, k: int) -> tuple[Array, Array]:
    """SeFa on stacked style-affine weights.

    Args:
      weights: [m, w_dim], one row per style channel.
      k: number of directions, 1 <= k <= w_dim.
    Returns:
      (components [k, w_dim] unit rows, eigenvalues [k] descending) of A^T A, A = row-normalised
      weights.
    """
    w = jnp.asarray(weights)
    if w.ndim != 2:
        raise ValueError(f"weights must be [m, w_dim], got shape {w.shape}")
    if not 1 <= k <= w.shape[1]:
        raise ValueError(f"k={k} must be between 1 and w_dim={w.shape[1]}")
    return _sefa(w.astype(jnp.promote_types(w.dtype, jnp.float32)), int(k))


@functools.partial(jax.jit, static_argnames=("k",))
def _sefa(w: Array, k: int) -> tuple[Array, Array]:
    a = w / jnp.linalg.norm(w, axis=1, keepdims=True)
    lam, vec = jnp.linalg.eigh(jnp.matmul(a.T, a, precision=jax.lax.Precision.HIGHEST))
    return sign_by_max_abs(vec[:, ::-1][:, :k].T), lam[::-1][:k]


def style_layers(variables: Mapping[str, Any]) -> list[tuple[str, Array]]:
    """Every style affine of the synthesis network, in synthesis order.

    Args:
      variables: generator variables ({'params': ...}) or the params tree itself.
    Returns:
      [(official name 'synthesis.b{r}.{conv0|conv1|torgb}', affine weight [C, w_dim])]: all convs
      and torgb layers, block by block (conv0, conv1, torgb).
    """
    params = variables.get("params", variables)
    if "synthesis" not in params:
        raise ValueError("generator params have no 'synthesis' entry: expected "
                         "variables['params']['synthesis']['b{r}'][layer]['affine']['weight']")
    syn = params["synthesis"]
    blocks = sorted((int(m.group(1)), key) for key in syn if (m := re.fullmatch(r"b(\d+)", key)))
    out = []
    for res, key in blocks:
        for layer in ("conv0", "conv1", "torgb"):
            if layer in syn[key]:
                try:
                    w = syn[key][layer]["affine"]["weight"]
                except (KeyError, TypeError) as e:
                    raise ValueError(f"params['synthesis']['{key}']['{layer}'] has no "
                                     "['affine']['weight'] [C, w_dim]") from e
                out.append((f"synthesis.b{res}.{layer}", w))
    if not out:
        raise ValueError("no synthesis layers with style affines found in the generator params")
    return out


def _default_order(names: list[str]) -> list[str]:
    """genforce's layer order: all convs, then the last block's torgb (= the ws index order)."""
    convs = [n for n in names if not n.endswith(".torgb")]
    rgbs = [n for n in names if n.endswith(".torgb")]
    return convs + rgbs[-1:]


def _parse_indices(spec: str, count: int) -> list[int]:
    idx: list[int] = []
    for part in spec.replace(" ", "").split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(f"layers={spec!r}: expected 'all', 'a-b' or 'a,b,c-d' indices")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if lo > hi:
            raise ValueError(f"layers={spec!r}: empty range {part!r}")
        idx.extend(range(lo, hi + 1))
    return sorted(set(idx))


def select_layers(variables: Mapping[str, Any], layers: str | Sequence[int | str] = "all"
                  ) -> list[tuple[str, Array]]:
    """Resolves a SeFa layer spec to [(name, affine weight [C, w_dim])].

    Args:
      variables: generator variables or params.
      layers: "all"; an index spec "0-3" / "0-1,5" / [0, 2] over the synthesis-layer order (convs,
        then the last torgb; index i uses ws[:, i]); or official names such as
        "synthesis.b8.conv0" (a trailing ".affine" is accepted).
    Returns:
      The selected layers in synthesis order, without duplicates.
    """
    table = dict(style_layers(variables))
    order = _default_order(list(table))
    if isinstance(layers, str) and layers == "all":
        names = order
    elif isinstance(layers, str) and not layers.startswith("synthesis"):
        names = _indices_to_names(_parse_indices(layers, len(order)), order, layers)
    else:
        items = [layers] if isinstance(layers, str) else list(layers)
        if not items:
            raise ValueError("layers is empty")
        if all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in items):
            names = _indices_to_names(sorted({int(i) for i in items}), order, layers)
        else:
            names = []
            for item in items:
                name = str(item).removesuffix(".affine")
                if name not in table:
                    raise ValueError(f"unknown SeFa layer {item!r}; valid: {sorted(table)}")
                names.append(name)
            all_names = list(table)
            names = sorted(set(names), key=all_names.index)
    return [(n, table[n]) for n in names]


def _indices_to_names(idx: list[int], order: list[str], spec) -> list[str]:
    bad = [i for i in idx if not 0 <= i < len(order)]
    if bad:
        raise ValueError(f"layers={spec!r}: indices {bad} out of range 0-{len(order) - 1} "
                         f"(synthesis order: {order})")
    return [order[i] for i in idx]


def sefa(cfg: Any, variables: Mapping[str, Any], k: int,
         layers: str | Sequence[int | str] = "all") -> SeFaResult:
    """SeFa directions of a generator.

    Args:
      cfg: the generator config (unused beyond API symmetry; layers come from the params tree).
      variables: generator variables {'params': {'synthesis': {'b{r}': {layer: {'affine':
        {'weight': [C, w_dim]}}}}}} (official layout).
      k: number of directions, 1 <= k <= w_dim.
      layers: see `select_layers`.
    Returns:
      SeFaResult(components [k, w_dim], eigenvalues [k], layers).
    """
    del cfg
    chosen = select_layers(variables, layers)
    w = jnp.concatenate([jnp.asarray(wt) for _, wt in chosen], axis=0)
    comps, lam = sefa_from_weights(w, k)
    return SeFaResult(comps, lam, tuple(n for n, _ in chosen))
