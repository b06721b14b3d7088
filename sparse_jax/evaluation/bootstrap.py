"""95% bootstrap intervals for Table 1 over repeats (discovery + evaluation with R seeds) and
evaluation seeds, and paired intervals for ratios between methods.

One draw resamples the R repeats with replacement and, inside each drawn repeat, its evaluation
seeds with replacement; every method's number is recomputed on that draw (a repeat's number from
its resampled seeds, then the mean over the drawn repeats). All methods of a repeat walk the same
evaluation seeds, so one draw uses the same indices for every method: a ratio's interval is
paired. The assignment of directions to attributes (from the assignment seeds) is held fixed
within a repeat. `docs/metrics.md` ("Uncertainty") defines the numbers.
"""
from __future__ import annotations

import os
import re
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from sparse_jax.evaluation import efficiency as reach_metrics
from sparse_jax.evaluation import metrics

NUMBERS = ("efficiency", "S_e", "S_d")


class SeedValues(NamedTuple):
    """Per-seed quantities of one method in one repeat, from which every number is a mean or a
    median over seeds.

    Attributes:
      negative: bool [S, A] seed starts negative for a; valid: bool [A] a is assigned.
      gain: [S, A] end-point p_a(d_max) - p_a(0) along a's direction.
      delta: [S, A, A] |p_j(d_max) - p_j(0)| along i's direction (row i, column j).
      eff: [S, A] shift / distance-to-shift along a's direction (0: not reached; NaN: no walk).
      d_max: the walk length.
    """

    negative: np.ndarray
    valid: np.ndarray
    gain: np.ndarray
    delta: np.ndarray
    eff: np.ndarray
    d_max: float


def seed_values(preds: Any, distances: Any, num_assign: int, reach_preds: Any = None,
                reach_distances: Any = None, reach_index: Any = None, threshold: float = 0.5,
                shift: float = 0.5) -> SeedValues:
    """SeedValues of one method from its `preds_<method>.npz` content.

    Args:
      preds: [S_assign + S_eval, D, G, T, A]; distances [T]; num_assign: S_assign.
      reach_preds [S_eval, U, T_r, A], reach_distances [T_r], reach_index [A]: the reach walk
        (None or empty: eff is NaN).
    """
    p = np.asarray(preds, np.float64)
    t = np.asarray(distances, np.float64)
    asg = metrics.assign_directions(p[:num_assign], t, threshold)
    pe = p[num_assign:]
    num_a = p.shape[-1]
    valid = asg.direction >= 0
    k, g = np.maximum(asg.direction, 0), np.maximum(asg.sign, 0)
    walk = pe[:, k, g]                                          # [S, A(i), T, A(j)]
    delta = np.abs(walk[:, :, -1, :] - walk[:, :, 0, :])
    own = walk[:, np.arange(num_a), :, np.arange(num_a)]        # [A, S, T]
    gain = (own[:, :, -1] - own[:, :, 0]).T
    eff = np.full(gain.shape, np.nan)
    if reach_preds is not None and np.size(reach_preds):
        r = np.asarray(reach_preds, np.float64)
        idx = np.where(valid, np.asarray(reach_index), -1)
        for a in range(num_a):
            if idx[a] >= 0:
                d = reach_metrics.reach_distances(r[:, idx[a], :, a], reach_distances, shift)
                eff[:, a] = np.where(np.isfinite(d), shift / d, 0.0)
    return SeedValues(negative=metrics.negative_mask(pe, threshold), valid=valid, gain=gain,
                      delta=delta, eff=eff, d_max=float(t[-1]))


def numbers(v: SeedValues, idx: np.ndarray | None = None) -> dict[str, float]:
    """Table 1's efficiency, end-point S_e and S_d of one method on seeds idx (default all).

    The same definitions as `metrics` (means over attributes of per-attribute numbers over their
    negative seeds), so idx = all seeds reproduces Table 1.
    """
    if idx is None:
        idx = np.arange(v.negative.shape[0])
    neg = v.negative[idx]
    count = neg.sum(0)
    ok = v.valid & (count > 0)
    c = np.maximum(count, 1)
    out = {}
    s_e = (v.gain[idx] * neg).sum(0) / c / v.d_max
    out["S_e"] = float(np.mean(s_e[ok])) if ok.any() else np.nan
    eff = np.where(neg, v.eff[idx], np.nan)
    with np.errstate(all="ignore"):
        med = np.array([np.median(eff[neg[:, a], a]) if ok[a] else np.nan
                        for a in range(neg.shape[1])])
    out["efficiency"] = float(np.nanmean(med)) if np.isfinite(med).any() else np.nan
    a_mat = np.einsum("sij,si->ij", v.delta[idx], neg.astype(np.float64)) / c[:, None]
    rows = np.where(ok[:, None], a_mat, 0.0)
    total = rows.sum()
    out["S_d"] = float(np.trace(rows) / total) if ok.any() and total > 0 else np.nan
    return out


def bootstrap(repeats: Sequence[Mapping[str, SeedValues]], num_draws: int = 1000,
              seed: int = 0, ratios: Sequence[tuple[str, str]] = (),
              order: Sequence[str] | None = None) -> dict[str, Any]:
    """Point estimates and 95% percentile intervals over repeats and evaluation seeds.

    Args:
      repeats: one {method: SeedValues} per repeat (the same methods and seed count in each).
      num_draws: bootstrap draws.
      seed: of the resampling (NumPy), so the intervals are reproducible.
      ratios: (numerator, denominator) method pairs whose paired ratio intervals to report.
      order: the methods' column order (default: as in the first repeat).

    Returns:
      {"methods": {m: {number: {"value", "low", "high"}}},
       "ratios": {"a/b": {number: {"value", "low", "high", "excludes_1"}}},
       "num_repeats", "num_draws"}; value is the mean over repeats of each repeat's number.
    """
    if not repeats:
        raise ValueError("bootstrap: no repeats")
    methods = [m for m in (order or repeats[0]) if m in repeats[0]]
    rng = np.random.default_rng(seed)
    n_rep = len(repeats)
    point = {m: {k: float(np.mean([numbers(r[m])[k] for r in repeats])) for k in NUMBERS}
             for m in methods}
    draws = {m: {k: np.empty(num_draws) for k in NUMBERS} for m in methods}
    for b in range(num_draws):
        chosen = rng.integers(0, n_rep, n_rep)
        per = {m: {k: [] for k in NUMBERS} for m in methods}
        for r in chosen:
            n_seeds = repeats[r][methods[0]].negative.shape[0]
            idx = rng.integers(0, n_seeds, n_seeds)
            for m in methods:
                for k, x in numbers(repeats[r][m], idx).items():
                    per[m][k].append(x)
        for m in methods:
            for k in NUMBERS:
                draws[m][k][b] = np.mean(per[m][k])

    def interval(x: np.ndarray) -> tuple[float, float]:
        x = x[np.isfinite(x)]
        if not x.size:
            return (np.nan, np.nan)
        lo, hi = np.percentile(x, [2.5, 97.5])
        return float(lo), float(hi)

    out: dict[str, Any] = {"num_repeats": n_rep, "num_draws": num_draws, "methods": {},
                           "ratios": {}}
    for m in methods:
        out["methods"][m] = {k: dict(zip(("low", "high"), interval(draws[m][k]), strict=True),
                                     value=point[m][k]) for k in NUMBERS}
    for a, b in ratios:
        if a not in point or b not in point:
            continue
        entry = {}
        for k in NUMBERS:
            with np.errstate(all="ignore"):
                lo, hi = interval(draws[a][k] / draws[b][k])
                value = point[a][k] / point[b][k] if point[b][k] else np.nan
            entry[k] = {"value": float(value), "low": lo, "high": hi,
                        "excludes_1": bool(np.isfinite(lo) and (lo > 1.0 or hi < 1.0))}
        out["ratios"][f"{a}/{b}"] = entry
    return out


def load_repeat(folder: str, threshold: float = 0.5, shift: float = 0.5
                ) -> dict[str, SeedValues]:
    """{method: SeedValues} from the preds_<method>.npz files an evaluation wrote to folder."""
    import json

    with open(os.path.join(folder, "table1.json")) as f:
        table = json.load(f)
    out = {}
    for method in table["methods"]:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", method).strip("_") or "method"
        with np.load(os.path.join(folder, f"preds_{stem}.npz")) as d:
            out[method] = seed_values(d["preds"], d["distances"], int(d["num_assign_seeds"]),
                                      d["reach_preds"], d["reach_distances"], d["reach_index"],
                                      threshold, shift)
    return out


def _cell(e: Mapping[str, float], digits: int = 3) -> str:
    if not np.isfinite(e["value"]):
        return "n/a"
    if not np.isfinite(e["low"]):
        return f"{e['value']:.{digits}f}"
    return f"{e['value']:.{digits}f} [{e['low']:.{digits}f}, {e['high']:.{digits}f}]"


def markdown(result: Mapping[str, Any]) -> str:
    """Table 1 with intervals, then the paired ratios with whether each interval excludes 1."""
    methods = list(result["methods"])
    labels = {"efficiency": "Efficiency (shift / distance to it, median over seeds)",
              "S_e": "End-point S_e, paper-literal", "S_d": "Disentanglement S_d"}
    lines = [f"## Table 1 with 95% bootstrap intervals ({result['num_repeats']} repeat(s) x "
             f"evaluation seeds, {result['num_draws']} draws)", "",
             "| | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for k in NUMBERS:
        lines.append(f"| {labels[k]} | " + " | ".join(_cell(result["methods"][m][k])
                                                       for m in methods) + " |")
    if result["ratios"]:
        lines += ["", "| ratio (paired) | " + " | ".join(labels[k] for k in NUMBERS) + " |",
                  "|---|" + "---|" * len(NUMBERS)]
        for name, entry in result["ratios"].items():
            cells = []
            for k in NUMBERS:
                e = entry[k]
                verdict = ("higher" if e["low"] > 1 else "lower") if e["excludes_1"] else \
                    "not significant"
                cells.append(f"{_cell(e, 2)} ({verdict})")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
