"""The explorer's computation, without any web code: one request -> images, W distance, bars.

`Explorer` holds the generator, direction files and classifier; `render` applies the sliders
(several directions at once, each with its ws-slot range) to one seed and returns uint8 images,
the W distance moved and the classifier's probabilities (of the edit, of the comparison and of
the unedited seed). Weights enter the jitted functions as arguments, and the truncation psi is a
traced argument too, so one compilation per batch shape serves every request: a slider move costs
one synthesis + classifier call (the seed's ws and its unedited predictions are cached).
"""
from __future__ import annotations

import collections
import dataclasses
import functools
from typing import Any, Sequence

import jax
import numpy as np

from sparse_jax.core import atomic, images
from sparse_jax.generation import edit
from sparse_jax.io import direction_files, model_dirs
from sparse_jax.models import classifier as clf
from sparse_jax.models import generators

SIGMA_LIMIT = 10.0
DEFAULT_NUM_DIRECTIONS = 12  # sliders per file on the page (a discovery file holds 20+)
_CACHE_SEEDS = 64


@dataclasses.dataclass(frozen=True)
class Slider:
    """One active slider: direction `index` of direction set `set`, `sigma` lat_stdev units,
    moving ws slots [start, end) (end None: every slot from start)."""

    set: int
    index: int
    sigma: float
    start: int = 0
    end: int | None = None


@functools.cache
def _truncate(cfg):
    # psi is traced: moving the truncation slider never recompiles.
    return jax.jit(lambda variables, ws, psi: generators.truncate(cfg, variables, ws, psi))


@functools.cache
def _forward(cfg, cfg_c):
    """jit (variables, params_c, ws [N, num_ws, w_dim]) -> (images [N, C, H, W], probs [N, A])."""
    def f(variables, params_c, ws):
        imgs = generators.synthesize(cfg, variables, ws, noise_mode="const")
        if cfg_c is None:
            return imgs, imgs[:, :0, 0, 0]
        return imgs, clf.predict_probs(cfg_c, params_c, imgs)
    return jax.jit(f)


class Explorer:
    """Generator + direction sets (+ classifier) behind the page."""

    def __init__(self, generator: str | None, direction_paths: Sequence[str],
                 classifier: str | None = None, use_classifier: bool = True,
                 num_directions: int | None = DEFAULT_NUM_DIRECTIONS):
        self.cfg, self.variables = model_dirs.load_generator(
            generator or model_dirs.default_generator_path())
        if self.cfg.c_dim:
            raise ValueError(f"--generator: a conditional generator (c_dim={self.cfg.c_dim}); "
                             "the explorer draws ws from seeds and needs c_dim=0")
        self.num_directions = num_directions
        self.sets = [self._read(p) for p in direction_paths]
        if not self.sets:
            raise ValueError("--inputs: give at least one direction file")
        self.cfg_c = self.params_c = None
        self.attributes: list[str] = []
        if use_classifier:
            self.cfg_c, self.params_c = model_dirs.load_classifier(classifier)
            self.attributes = list(self.cfg_c.attribute_names)
        self._seeds: collections.OrderedDict = collections.OrderedDict()

    def _read(self, path: str) -> dict[str, Any]:
        ds = direction_files.read_directions(path, self.cfg.w_dim, self.num_directions)
        k = ds.lat_comp.shape[0]
        name, ranges, sigmas, labels = ds.method, None, None, [f"d{i}" for i in range(k)]
        if path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as f:
                if "name" in f.files:
                    name = str(f["name"])
                if "layer_ranges" in f.files:
                    ranges = f["layer_ranges"].reshape(-1, 2)[:k].tolist()
                if "sigmas" in f.files:
                    sigmas = f["sigmas"].reshape(-1)[:k].tolist()
                if "sources" in f.files and "indices" in f.files:  # an exported edit
                    src, idx = f["sources"].reshape(-1)[:k], f["indices"].reshape(-1)[:k]
                    if len(src) == len(idx) == k:
                        labels = [f"{s} d{int(i)}" for s, i in zip(src, idx, strict=True)]
        num_ws = self.cfg.num_ws
        if ranges is not None and (len(ranges) != k or not all(
                0 <= a < b <= num_ws for a, b in ranges)):
            raise ValueError(f"{path}: layer_ranges must hold {k} [start, end) pairs with "
                             f"0 <= start < end <= num_ws={num_ws}")
        if sigmas is not None and (len(sigmas) != k or not all(
                abs(v) <= SIGMA_LIMIT for v in sigmas)):
            raise ValueError(f"{path}: sigmas must hold {k} values within +-{SIGMA_LIMIT:g}")
        # Sigma units need a positive lat_stdev (a SeFa-style .npy has none): W units then.
        stdev = np.asarray(ds.lat_stdev, np.float64)
        sigma_units = bool(np.all(np.isfinite(stdev) & (stdev > 0)))
        return {"path": path, "name": name, "method": ds.method, "lat_comp": ds.lat_comp,
                "lat_stdev": stdev, "scale": stdev if sigma_units else np.ones(k),
                "units": "sigma" if sigma_units else "w", "layer_ranges": ranges,
                "sigmas": sigmas, "labels": labels}

    def info(self) -> dict[str, Any]:
        """What the page needs to build its controls."""
        return {"num_ws": self.cfg.num_ws, "w_dim": self.cfg.w_dim,
                "resolution": self.cfg.img_resolution, "attributes": self.attributes,
                "sigma_limit": SIGMA_LIMIT,
                "sets": [{"name": s["name"], "method": s["method"], "path": s["path"],
                          "k": int(s["lat_comp"].shape[0]), "units": s["units"],
                          "labels": s["labels"], "layer_ranges": s["layer_ranges"],
                          "sigmas": s["sigmas"]} for s in self.sets]}

    def edits(self, sliders: Sequence[Slider], along: int | None = None) -> list[edit.Edit]:
        """Edit objects of the sliders; `along` replaces every slider's set (side by side: the
        same index and W distance along another method's direction)."""
        if along is not None and not 0 <= along < len(self.sets):
            raise ValueError(f"side by side: no direction file {along} "
                             f"(there are {len(self.sets)})")
        out = []
        for s in sliders:
            if not 0 <= s.set < len(self.sets):
                raise ValueError(f"slider set {s.set}: there are {len(self.sets)} direction files")
            src = self.sets[s.set]
            if not 0 <= s.index < src["lat_comp"].shape[0]:
                raise ValueError(f"direction {s.index} is out of range for {src['name']}")
            if not -SIGMA_LIMIT <= s.sigma <= SIGMA_LIMIT:
                raise ValueError(f"{src['name']} {src['labels'][s.index]}: sigma must be within "
                                 f"+-{SIGMA_LIMIT:g}, got {s.sigma}")
            distance = s.sigma * float(src["scale"][s.index])
            target = self.sets[s.set if along is None else along]
            index = min(s.index, target["lat_comp"].shape[0] - 1)
            end = self.cfg.num_ws if s.end is None else s.end
            try:
                out.append(edit.make_edit(target["lat_comp"][index], distance, self.cfg.num_ws,
                                          (s.start, end), f"{target['name']} d{index}",
                                          sigma=s.sigma))
            except ValueError as e:
                raise ValueError(f"{src['name']} {src['labels'][s.index]}: {e}") from None
        return out

    def _seed(self, seed: int, truncation_psi: float) -> tuple[np.ndarray, np.ndarray]:
        """(ws [1, num_ws, w_dim], unedited probabilities [A]) of a seed, cached."""
        if not 0.0 <= truncation_psi <= 1.0 or seed < 0:
            raise ValueError(f"seed {seed}, truncation psi {truncation_psi}: expected a seed "
                             ">= 0 and psi in [0, 1]")
        key = (int(seed), float(truncation_psi))
        if key not in self._seeds:
            ws = edit.ws_from_seeds(self.cfg, self.variables, [int(seed)], 1.0)
            if truncation_psi != 1.0:
                ws = np.asarray(_truncate(self.cfg)(self.variables, ws,
                                                    np.float32(truncation_psi)))
            _, probs = self._forward(ws)
            self._seeds[key] = (ws, probs[0])
            while len(self._seeds) > _CACHE_SEEDS:
                self._seeds.popitem(last=False)
        self._seeds.move_to_end(key)
        return self._seeds[key]

    def base_ws(self, seed: int, truncation_psi: float = 1.0) -> np.ndarray:
        return self._seed(seed, truncation_psi)[0]

    def _forward(self, ws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        imgs, probs = _forward(self.cfg, self.cfg_c)(self.variables, self.params_c, ws)
        return np.asarray(imgs), np.asarray(probs)

    def render(self, seed: int, truncation_psi: float, sliders: Sequence[Slider],
               compare: int | None = None) -> dict[str, Any]:
        """-> {'images': [uint8 [H, W, C] of the edit (, of the comparison)],
        'ws': [1, num_ws, w_dim] edited, 'w_distance': max over slots of |ws - base|,
        'w_distance_compare', 'predictions': [{attr: p}] per image, 'base': {attr: p} of the
        unedited seed}."""
        base, base_probs = self._seed(seed, truncation_psi)
        variants = [self.edits(sliders)] + ([self.edits(sliders, along=compare)]
                                            if compare is not None else [])
        ws_list = [edit.apply_edits(base, e) for e in variants]
        # One synthesis + classifier call for both images (batch 1 or 2: two compiled shapes).
        imgs, probs = self._forward(np.concatenate(ws_list))
        dist = [float(np.linalg.norm(w - base, axis=-1).max()) for w in ws_list]
        return {"images": list(images.to_uint8(imgs)), "ws": ws_list[0],
                "w_distance": dist[0], "w_distance_compare": dist[1] if compare is not None
                else None,
                "predictions": [dict(zip(self.attributes, map(float, row), strict=True))
                                for row in probs] if self.attributes else [],
                "base": dict(zip(self.attributes, map(float, base_probs), strict=True))}

    def export(self, folder: str, name: str, seed: int, truncation_psi: float,
               sliders: Sequence[Slider]) -> list[str]:
        """Writes NAME.png (the generator's resolution), NAME_ws.npy [1, num_ws, w_dim] and, when
        a slider is moved, NAME_directions.npz: the chosen edit as a named direction file
        (lat_comp, lat_stdev, name, method, sources, indices, layer_ranges, sigmas) that
        --inputs reloads as sliders named after their sources, set to the exported edit."""
        if (not name or any(c in name for c in "/\\\0") or name.startswith(".")
                or name != name.strip()):
            raise ValueError(f"export name {name!r}: expected a plain file name")
        out = self.render(seed, truncation_psi, sliders)
        edits = self.edits(sliders)
        paths = [f"{folder}/{name}.png", f"{folder}/{name}_ws.npy",
                 f"{folder}/{name}_directions.npz"]
        atomic.write_bytes(paths[0], images.png_bytes(out["images"][0]))
        atomic.save_npy(paths[1], out["ws"].astype(np.float32))
        if edits:
            comp = np.stack([e.direction for e in edits])
            stdev = np.array([float(self.sets[s.set]["scale"][s.index]) for s in sliders])
            atomic.save_npz(
                paths[2], lat_comp=comp, lat_stdev=stdev, name=np.asarray(name),
                method=np.asarray(name),
                sources=np.asarray([self.sets[s.set]["name"] for s in sliders]),
                indices=np.asarray([s.index for s in sliders], np.int64),
                layer_ranges=np.asarray([e.layer_range for e in edits], np.int64),
                sigmas=np.asarray([s.sigma for s in sliders], np.float64),
                seed=np.asarray(int(seed), np.int64),
                truncation_psi=np.asarray(float(truncation_psi), np.float64))
        else:
            paths.pop()
        return paths
