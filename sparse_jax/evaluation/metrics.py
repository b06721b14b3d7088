"""The evaluation protocol: assignment of directions to attributes, S_e, d50, A and S_d.

Pure NumPy functions on arrays of classifier outputs; `docs/metrics.md` defines every number.
The evaluation computes the same numbers on the device (`device_metrics`); these functions are
its test oracle, and `summary_from_numbers` formats either backend's output. The headline
distance-to-effect efficiency is in `efficiency`.
A prediction array `preds` has shape [S, D, G, T, A]: seeds x directions x signs x distances x
attributes, holding p_a in [0, 1] for the image at w + sign_g * t_k * d (see `sparse_jax.walks`).
The distance grid must start at 0 and end at d_max.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np

from sparse_jax.io.direction_files import METHOD_LABELS

NA_NO_EVAL_SEED = "n/a (no seed starts negative)"
NA_NO_ASSIGN_SEED = "n/a (no assignment seed starts negative)"
NA_NO_CHANGE = "n/a (no attribute changed)"
NOT_REACHED = "not reached"
NA_NO_REACH_WALK = "n/a (no distance-to-effect walk)"
REACHED = "reached"


@dataclasses.dataclass(frozen=True)
class Assignment:
    """Which (direction, sign) each attribute was given, from the assignment seeds.

    Attributes:
      direction: int [A], direction index; -1 where no assignment seed starts negative.
      sign: int [A], index into the sign axis G; -1 where unassigned.
      gain: float [A], mean of p_a(d_max) - p_a(0) over the negative assignment seeds for the
        chosen (direction, sign); NaN where unassigned.
      num_negative: int [A], assignment seeds with p_a(0) < threshold.
    """

    direction: np.ndarray
    sign: np.ndarray
    gain: np.ndarray
    num_negative: np.ndarray


def check_preds(preds: Any, distances: Any, name: str = "preds") -> tuple[np.ndarray, np.ndarray]:
    """Validates a prediction array against its distance grid.

    Args:
      preds: [S, D, G, T, A] in [0, 1].
      distances: [T], increasing, distances[0] == 0, distances[-1] == d_max > 0.

    Returns:
      (preds, distances) as float64 NumPy arrays.
    """
    p = np.asarray(preds, np.float64)
    t = np.asarray(distances, np.float64)
    if p.ndim != 5:
        raise ValueError(f"{name}: expected shape [seeds, directions, signs, distances, "
                         f"attributes], got {p.shape}")
    if t.ndim != 1 or t.shape[0] != p.shape[3]:
        raise ValueError(f"distances: expected shape [{p.shape[3]}] to match {name}, got {t.shape}")
    if t.shape[0] < 2 or t[0] != 0.0 or not np.all(np.diff(t) > 0):
        raise ValueError(f"distances: expected an increasing grid starting at 0 with at least two "
                         f"points, got {t.tolist()}")
    if p.shape[0] == 0:
        raise ValueError(f"{name}: no seeds")
    if not np.all(np.isfinite(p)) or p.min() < 0.0 or p.max() > 1.0:
        raise ValueError(f"{name}: predictions must be finite probabilities in [0, 1]")
    return p, t


def negative_mask(preds: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Seeds whose unedited image is negative for each attribute.

    Args:
      preds: [S, D, G, T, A]; distance index 0 is the unedited image (the same for every D, G).
      threshold: p_a(0) < threshold counts as negative.

    Returns:
      bool [S, A].
    """
    return preds[:, 0, 0, 0, :] < threshold


def assign_directions(preds: Any, distances: Any, threshold: float = 0.5) -> Assignment:
    """Gives each attribute the (direction, sign) with the largest mean gain on negative seeds.

    Ties go to the lowest direction index, then the first sign.

    Args:
      preds: [S, D, G, T, A] on the assignment seeds.
      distances: [T], 0 .. d_max.
      threshold: negative means p_a(0) < threshold.

    Returns:
      An `Assignment` over the A attributes.
    """
    p, _ = check_preds(preds, distances, "assignment preds")
    neg = negative_mask(p, threshold)                           # [S, A]
    count = neg.sum(0)                                          # [A]
    delta = p[:, :, :, -1, :] - p[:, :, :, 0, :]                # [S, D, G, A]
    summed = np.einsum("sdga,sa->dga", delta, neg.astype(np.float64))
    mean_gain = summed / np.maximum(count, 1)                   # [D, G, A]
    num_a = p.shape[-1]
    flat = mean_gain.reshape(-1, num_a)
    best = np.argmax(flat, axis=0)                              # first maximum wins ties
    has = count > 0
    direction = np.where(has, best // p.shape[2], -1).astype(np.int64)
    sign = np.where(has, best % p.shape[2], -1).astype(np.int64)
    gain = np.where(has, flat[best, np.arange(num_a)], np.nan)
    return Assignment(direction=direction, sign=sign, gain=gain,
                      num_negative=count.astype(np.int64))


def _assigned_walks(p: np.ndarray, assignment: Assignment, a: int) -> np.ndarray:
    """[S, T, A] predictions along attribute a's assigned direction and sign."""
    return p[:, assignment.direction[a], assignment.sign[a], :, :]


def efficiency(preds: Any, distances: Any, assignment: Assignment,
               threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """S_e(a) = mean over negative seeds of [p_a(d_max) - p_a(0)] / d_max.

    Args:
      preds: [S, D, G, T, A] on the evaluation seeds.
      distances: [T], 0 .. d_max.
      assignment: from `assign_directions` on the assignment seeds.
      threshold: negative means p_a(0) < threshold.

    Returns:
      s_e: float [A], NaN where the attribute is unassigned or no evaluation seed is negative.
      num_negative: int [A], evaluation seeds with p_a(0) < threshold.
    """
    p, t = check_preds(preds, distances, "evaluation preds")
    neg = negative_mask(p, threshold)
    num_a = p.shape[-1]
    s_e = np.full(num_a, np.nan)
    for a in range(num_a):
        if assignment.direction[a] < 0 or not neg[:, a].any():
            continue
        walk = _assigned_walks(p, assignment, a)[neg[:, a], :, a]    # [S_neg, T]
        s_e[a] = np.mean(walk[:, -1] - walk[:, 0]) / t[-1]
    return s_e, neg.sum(0).astype(np.int64)


def curves(preds: Any, distances: Any, assignment: Assignment,
           threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of p_a along attribute a's direction over its negative evaluation seeds.

    Args:
      preds: [S, D, G, T, A]; distances: [T]; assignment: as in `efficiency`.

    Returns:
      mean, std: float [A, T]; NaN rows where S_e is NaN.
    """
    p, t = check_preds(preds, distances, "evaluation preds")
    neg = negative_mask(p, threshold)
    num_a = p.shape[-1]
    mean = np.full((num_a, t.shape[0]), np.nan)
    std = np.full((num_a, t.shape[0]), np.nan)
    for a in range(num_a):
        if assignment.direction[a] < 0 or not neg[:, a].any():
            continue
        walk = _assigned_walks(p, assignment, a)[neg[:, a], :, a]
        mean[a], std[a] = walk.mean(0), walk.std(0)
    return mean, std


def d50(preds: Any, distances: Any, assignment: Assignment, threshold: float = 0.5,
        target: float = 0.5) -> np.ndarray:
    """Smallest grid distance at which the mean p_a over negative seeds reaches `target`.

    Args:
      preds: [S, D, G, T, A]; distances: [T]; assignment: as in `efficiency`.
      threshold: negative means p_a(0) < threshold.
      target: the mean probability to reach.

    Returns:
      float [A]: the distance; +inf where not reached by d_max; NaN where S_e is NaN.
    """
    mean, _ = curves(preds, distances, assignment, threshold)
    t = np.asarray(distances, np.float64)
    out = np.full(mean.shape[0], np.nan)
    for a in range(mean.shape[0]):
        if np.isnan(mean[a, 0]):
            continue
        hit = np.nonzero(mean[a] >= target)[0]
        out[a] = t[hit[0]] if hit.size else np.inf
    return out


def disentanglement_matrix(preds: Any, distances: Any, assignment: Assignment,
                           threshold: float = 0.5) -> np.ndarray:
    """A_ij = mean over seeds negative for i of |p_j(d_max) - p_j(0)| along i's direction.

    Args:
      preds: [S, D, G, T, A]; distances: [T]; assignment: as in `efficiency`.

    Returns:
      float [A, A]; row i is NaN where S_e(i) is NaN.
    """
    p, _ = check_preds(preds, distances, "evaluation preds")
    neg = negative_mask(p, threshold)
    num_a = p.shape[-1]
    mat = np.full((num_a, num_a), np.nan)
    for i in range(num_a):
        if assignment.direction[i] < 0 or not neg[:, i].any():
            continue
        walk = _assigned_walks(p, assignment, i)[neg[:, i]]          # [S_neg, T, A]
        mat[i] = np.abs(walk[:, -1, :] - walk[:, 0, :]).mean(0)
    return mat


def disentanglement_score(mat: Any) -> float:
    """S_d = Tr(A) / sum(A) over the defined (non-NaN) rows; NaN if none or if the sum is 0."""
    m = np.asarray(mat, np.float64)
    rows = ~np.isnan(m).any(1)
    if not rows.any():
        return math.nan
    total = m[rows].sum()
    if total <= 0.0:
        return math.nan
    return float(np.trace(np.where(rows[:, None], m, 0.0)) / total)


def median_d50(values: Any) -> float:
    """Median over attributes with a defined d50; +inf ("not reached") counts as the largest."""
    v = np.asarray(values, np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return math.nan
    v = np.sort(v)
    n = v.size
    lo, hi = v[(n - 1) // 2], v[n // 2]
    if np.isinf(hi):
        return math.inf
    return float((lo + hi) / 2.0)


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _status(x: float, na_reason: str) -> str:
    if np.isnan(x):
        return na_reason
    return NOT_REACHED if np.isinf(x) else REACHED


NUMBER_FIELDS = ("direction", "sign", "gain", "num_negative_assign", "num_negative_eval", "s_e",
                 "mean", "std", "d50", "a_matrix", "s_d", "efficiency", "reach_distance",
                 "reached")


def table_numbers(preds_assign: Any, preds_eval: Any, distances: Any, reach_preds: Any = None,
                  reach_distances: Any = None, reach_index: Any = None, threshold: float = 0.5,
                  target: float = 0.5, shift: float = 0.5) -> dict[str, Any]:
    """Every per-attribute number of one method (NumPy; the oracle of `device_metrics`).

    Args:
      preds_assign: [S_assign, D, G, T, A]; preds_eval: [S_eval, D, G, T, A]; distances: [T].
      reach_preds: [S_eval, U, T_r, A] the evaluation seeds walked along U signed directions
        on the reach grid reach_distances [T_r]; reach_index: int [A] the walk of attribute a
        (-1: none). None: the distance-to-effect numbers are NaN.
      threshold, target, shift: see docs/metrics.md.

    Returns:
      {field: array} for every name in NUMBER_FIELDS (as `device_metrics.Numbers`).
    """
    pa, t = check_preds(preds_assign, distances, "assignment preds")
    pe, _ = check_preds(preds_eval, distances, "evaluation preds")
    if pa.shape[1:] != pe.shape[1:]:
        raise ValueError(f"assignment preds {pa.shape} and evaluation preds {pe.shape} differ "
                         f"beyond the seed axis")
    asg = assign_directions(pa, t, threshold)
    s_e, n_neg = efficiency(pe, t, asg, threshold)
    mean, std = curves(pe, t, asg, threshold)
    mat = disentanglement_matrix(pe, t, asg, threshold)
    num_a = pe.shape[-1]
    reach = {k: np.full(num_a, np.nan) for k in ("efficiency", "distance", "reached")}
    if reach_preds is not None:
        from sparse_jax.evaluation import efficiency as reach_metrics

        idx = np.where(asg.direction >= 0, np.asarray(reach_index), -1)
        reach = reach_metrics.reach_numbers(reach_preds, reach_distances, idx,
                                            negative_mask(pe, threshold), shift)
    return {"direction": asg.direction, "sign": asg.sign, "gain": asg.gain,
            "num_negative_assign": asg.num_negative, "num_negative_eval": n_neg, "s_e": s_e,
            "mean": mean, "std": std, "d50": d50(pe, t, asg, threshold, target),
            "a_matrix": mat, "s_d": np.float64(disentanglement_score(mat)),
            "efficiency": reach["efficiency"], "reach_distance": reach["distance"],
            "reached": reach["reached"]}


def summarize_method(preds_assign: Any, preds_eval: Any, distances: Any,
                     attribute_names: Sequence[str], lat_stdev: Any | None = None,
                     threshold: float = 0.5, target: float = 0.5, *, reach_preds: Any = None,
                     reach_distances: Any = None, reach_index: Any = None,
                     shift: float = 0.5) -> dict[str, Any]:
    """Every Table 1 number for one method, as a JSON-ready dict (NumPy throughout).

    Args:
      preds_assign: [S_assign, D, G, T, A] on the assignment seeds.
      preds_eval: [S_eval, D, G, T, A] on the evaluation seeds (disjoint from the above).
      distances: [T], 0 .. d_max, in absolute W units.
      attribute_names: A names.
      lat_stdev: [D] std of w along each direction (sigma units), or None.
      threshold: negative means p_a(0) < threshold.
      target: d50 is where the mean p_a reaches this.
      reach_preds, reach_distances, reach_index, shift: the distance-to-effect walk (see
        `table_numbers`); None leaves those numbers n/a.

    Returns:
      A dict; NaN becomes None with a `*_status` string saying why (see docs/metrics.md).
    """
    numbers = table_numbers(preds_assign, preds_eval, distances, reach_preds, reach_distances,
                            reach_index, threshold, target, shift)
    num_d = np.shape(preds_eval)[1]
    if lat_stdev is not None and np.shape(lat_stdev) != (num_d,):
        raise ValueError(f"lat_stdev: expected shape [{num_d}], got {np.shape(lat_stdev)}")
    return summary_from_numbers(numbers, distances, attribute_names, lat_stdev, shift=shift,
                                reach_distances=reach_distances)


def _status_na(value: float, na: str) -> str:
    return na if np.isnan(value) else "ok"


def summary_from_numbers(numbers: Mapping[str, Any], distances: Any,
                         attribute_names: Sequence[str], lat_stdev: Any | None = None, *,
                         shift: float = 0.5, reach_distances: Any = None) -> dict[str, Any]:
    """The JSON-ready Table 1 dict of one method from `table_numbers` (NumPy) or
    `device_metrics.table_numbers` (device) output.

    Args:
      numbers: {field: array} with every NUMBER_FIELDS entry.
      distances: [T] the evaluation grid; attribute_names: A names; lat_stdev: [D] or None.
      shift: the distance-to-effect rise; reach_distances: [T_r] its grid (or None).
    """
    n = {k: np.asarray(numbers[k], np.float64) for k in NUMBER_FIELDS}
    t = np.asarray(distances, np.float64)
    num_a = n["s_e"].shape[0]
    if len(attribute_names) != num_a:
        raise ValueError(f"attribute_names: expected {num_a} names, got {len(attribute_names)}")
    num_d = None
    sigma = None
    if lat_stdev is not None:
        sigma = np.asarray(lat_stdev, np.float64)
        num_d = sigma.shape[0] if sigma.ndim == 1 else None
        if sigma.ndim != 1:
            raise ValueError(f"lat_stdev: expected shape [num_directions], got {sigma.shape}")
    direction = n["direction"].astype(np.int64)
    if num_d is not None and direction.max(initial=-1) >= num_d:
        raise ValueError(f"lat_stdev: expected one value per direction, got {num_d} for "
                         f"direction index {direction.max()}")
    s_e, d, mat = n["s_e"], n["d50"], n["a_matrix"]
    s_d = float(n["s_d"])
    med = median_d50(d)
    eff = n["efficiency"]
    attrs: dict[str, Any] = {}
    for a, name in enumerate(attribute_names):
        k = int(direction[a])
        na = NA_NO_ASSIGN_SEED if k < 0 else NA_NO_EVAL_SEED
        shared = [attribute_names[b] for b in range(num_a)
                  if b != a and k >= 0 and direction[b] == k]
        sig = float(sigma[k]) if (sigma is not None and k >= 0) else math.nan
        ok_sig = np.isfinite(sig) and sig > 0
        attrs[name] = {
            "direction": k if k >= 0 else None,
            "sign": (1 if n["sign"][a] == 0 else -1) if k >= 0 else None,
            "assign_gain": _finite_or_none(n["gain"][a]),
            "num_negative_assign": int(n["num_negative_assign"][a]),
            "num_negative_eval": int(n["num_negative_eval"][a]),
            "shared_with": shared,
            "efficiency": _finite_or_none(eff[a]),
            "efficiency_status": _status_na(eff[a], na if k < 0 or np.isnan(s_e[a]) else
                                            NA_NO_REACH_WALK),
            "reach_distance": _finite_or_none(n["reach_distance"][a]),
            "reach_distance_status": _status(n["reach_distance"][a], na),
            "reach_distance_sigma": (_finite_or_none(n["reach_distance"][a] / sig)
                                     if ok_sig else None),
            "reached_fraction": _finite_or_none(n["reached"][a]),
            "S_e": _finite_or_none(s_e[a]),
            "S_e_status": _status_na(s_e[a], na),
            "d50": _finite_or_none(d[a]),
            "d50_status": _status(d[a], na),
            "d50_sigma": _finite_or_none(d[a] / sig) if ok_sig else None,
            "d_max_sigma": float(t[-1] / sig) if ok_sig else None,
            "direction_stdev": sig if ok_sig else None,
            "curve_mean": [_finite_or_none(x) for x in n["mean"][a]],
            "curve_std": [_finite_or_none(x) for x in n["std"][a]],
        }
    scored = int(np.sum(~np.isnan(s_e)))
    eff_scored = int(np.sum(~np.isnan(eff)))
    reached = n["reached"]
    return {
        "efficiency": float(np.nanmean(eff)) if eff_scored else None,
        "efficiency_status": "ok" if eff_scored else (
            NA_NO_EVAL_SEED if scored == 0 else NA_NO_REACH_WALK),
        "reached_fraction": float(np.nanmean(reached)) if eff_scored else None,
        "median_reach_distance": _finite_or_none(median_d50(n["reach_distance"])),
        "median_reach_distance_status": _status(median_d50(n["reach_distance"]),
                                                NA_NO_EVAL_SEED),
        "target_shift": float(shift),
        "reach_distances": (None if reach_distances is None else
                            np.asarray(reach_distances, np.float64).tolist()),
        "S_e": float(np.nanmean(s_e)) if scored else None,
        "S_e_status": "ok" if scored else NA_NO_EVAL_SEED,
        "num_attributes_scored": scored,
        "num_attributes": num_a,
        "S_d": _finite_or_none(s_d),
        "S_d_status": "ok" if np.isfinite(s_d) else (
            NA_NO_EVAL_SEED if scored == 0 else NA_NO_CHANGE),
        "median_d50": _finite_or_none(med),
        "median_d50_status": _status(med, NA_NO_EVAL_SEED),
        "A": [[_finite_or_none(x) for x in row] for row in mat],
        "distances_sigma": (None if sigma is None else
                            [[_finite_or_none(x / s) if s > 0 else None for x in t]
                             for s in sigma]),
        "attributes": attrs,
    }


def _fmt(value: float | None, status: str, digits: int = 3) -> str:
    if value is None:
        return status
    return f"{value:.{digits}f}"


def table1_markdown(results: Mapping[str, Any]) -> str:
    """Renders Table 1 (methods side by side) and one per-attribute table per method.

    Args:
      results: {"d_max": float, "distances": [T], "methods": {name: summarize_method(...)}, ...}.

    Returns:
      Markdown text.
    """
    methods = results["methods"]
    names = list(methods)
    source = results.get("d_max_source", "")
    lines = ["# Table 1", "",
             f"Walk length d_max = {results['d_max']:.4g} (W units; {source}), "
             f"{len(results['distances'])} distances, {results.get('num_eval_seeds', '?')} "
             f"evaluation seeds, {results.get('num_assign_seeds', '?')} assignment seeds.", "",
             "Methods: " + "; ".join(f"{m} = {METHOD_LABELS[m]}" for m in names
                                     if m in METHOD_LABELS) + ".", "",
             "| | " + " | ".join(names) + " |",
             "|---|" + "---|" * len(names)]
    shift = next((methods[m].get("target_shift") for m in names), None)
    shift_txt = f"{shift:g}" if shift is not None else "?"
    rows = [(f"Efficiency: {shift_txt} / distance to a Δp of {shift_txt} (median over seeds)",
             "efficiency", 3),
            ("Seeds that reach that Δp", "reached_fraction", 2),
            ("Median distance to that Δp (W)", "median_reach_distance", 3),
            ("End-point S_e, paper-literal (Δp at d_max / d_max)", "S_e", 3),
            ("Disentanglement S_d", "S_d", 3),
            ("Median d50 (W distance)", "median_d50", 3)]
    for label, key, digits in rows:
        cells = [_fmt(methods[m].get(key), methods[m].get(f"{key}_status", "n/a"), digits)
                 for m in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    cells = [f"{methods[m]['num_attributes_scored']}/{methods[m]['num_attributes']}" for m in names]
    lines.append("| Attributes scored | " + " | ".join(cells) + " |")
    for m in names:
        lines += ["", f"## {m}", "",
                  "| attribute | direction | assign gain | negative assign seeds "
                  "| negative eval seeds | efficiency | reached | distance to Δp (W) "
                  "| end-point S_e | d50 (W) | d50 (σ) | d_max (σ) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in methods[m]["attributes"].items():
            if r["direction"] is None:
                direction = NA_NO_ASSIGN_SEED
            else:
                direction = f"{r['direction']}{'+' if r['sign'] > 0 else '−'}"
                if r["shared_with"]:
                    direction += " (shared with " + ", ".join(r["shared_with"]) + ")"
            d50_sigma = ("—" if r["d50_sigma"] is None else f"{r['d50_sigma']:.3g}")
            d_max_sigma = ("—" if r["d_max_sigma"] is None else f"{r['d_max_sigma']:.3g}")
            lines.append(
                f"| {name} | {direction} | {_fmt(r['assign_gain'], 'n/a')} | "
                f"{r['num_negative_assign']} | {r['num_negative_eval']} | "
                f"{_fmt(r.get('efficiency'), r.get('efficiency_status', 'n/a'))} | "
                f"{_fmt(r.get('reached_fraction'), 'n/a', 2)} | "
                f"{_fmt(r.get('reach_distance'), r.get('reach_distance_status', 'n/a'))} | "
                f"{_fmt(r['S_e'], r['S_e_status'])} | {_fmt(r['d50'], r['d50_status'])} | "
                f"{d50_sigma} | {d_max_sigma} |")
    return "\n".join(lines) + "\n"
