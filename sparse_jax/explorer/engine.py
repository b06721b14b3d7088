"""The explorer's computation, without any web code: one request -> images, W distance, bars.

`Explorer` holds the generator, direction files and classifier; `render` applies the sliders
(several directions at once, each with its ws-slot range) to one seed and returns PNG bytes, the
W distance moved and the classifier's probabilities. Weights enter the jitted functions as
arguments (generation/edit.py), so one compilation serves every request.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import jax
import numpy as np

from sparse_jax.core import atomic, images
from sparse_jax.generation import edit
from sparse_jax.io import direction_files, model_dirs
from sparse_jax.models import classifier as clf

SIGMA_LIMIT = 10.0


@dataclasses.dataclass(frozen=True)
class Slider:
    """One active slider: direction `index` of direction set `set`, `sigma` lat_stdev units,
    moving ws slots [start, end)."""

    set: int
    index: int
    sigma: float
    start: int = 0
    end: int | None = None


@functools.cache
def _predict(cfg_c):
    return jax.jit(lambda params, x: clf.predict_probs(cfg_c, params, x))


class Explorer:
    """Generator + direction sets (+ classifier) behind the page."""

    def __init__(self, generator: str | None, direction_paths: Sequence[str],
                 classifier: str | None = None, use_classifier: bool = True):
        self.cfg, self.variables = model_dirs.load_generator(
            generator or model_dirs.default_generator_path())
        self.sets = [self._read(p) for p in direction_paths]
        if not self.sets:
            raise ValueError("--inputs: give at least one direction file")
        self.cfg_c = self.params_c = None
        self.attributes: list[str] = []
        if use_classifier:
            self.cfg_c, self.params_c = model_dirs.load_classifier(classifier)
            self.attributes = list(self.cfg_c.attribute_names)

    def _read(self, path: str) -> dict[str, Any]:
        ds = direction_files.read_directions(path, self.cfg.w_dim)
        with np.load(path, allow_pickle=False) as f:
            name = str(f["name"]) if "name" in f.files else ds.method
            ranges = f["layer_ranges"].tolist() if "layer_ranges" in f.files else None
            sigmas = f["sigmas"].tolist() if "sigmas" in f.files else None
        return {"path": path, "name": name, "method": ds.method, "lat_comp": ds.lat_comp,
                "lat_stdev": ds.lat_stdev, "layer_ranges": ranges, "sigmas": sigmas}

    def info(self) -> dict[str, Any]:
        """What the page needs to build its controls."""
        return {"num_ws": self.cfg.num_ws, "w_dim": self.cfg.w_dim,
                "resolution": self.cfg.img_resolution, "attributes": self.attributes,
                "sigma_limit": SIGMA_LIMIT,
                "sets": [{"name": s["name"], "method": s["method"], "path": s["path"],
                          "k": int(s["lat_comp"].shape[0]),
                          "layer_ranges": s["layer_ranges"], "sigmas": s["sigmas"]}
                         for s in self.sets]}

    def edits(self, sliders: Sequence[Slider], along: int | None = None) -> list[edit.Edit]:
        """Edit objects of the sliders; `along` replaces every slider's set (side by side: the
        same index and W distance along another method's direction)."""
        out = []
        for s in sliders:
            if not -SIGMA_LIMIT <= s.sigma <= SIGMA_LIMIT:
                raise ValueError(f"sigma must be within +-{SIGMA_LIMIT:g}, got {s.sigma}")
            src = self.sets[s.set]
            if not 0 <= s.index < src["lat_comp"].shape[0]:
                raise ValueError(f"direction {s.index} is out of range for {src['name']}")
            distance = s.sigma * float(src["lat_stdev"][s.index])
            target = self.sets[s.set if along is None else along]
            index = min(s.index, target["lat_comp"].shape[0] - 1)
            end = self.cfg.num_ws if s.end is None else s.end
            out.append(edit.make_edit(target["lat_comp"][index], distance, self.cfg.num_ws,
                                      (s.start, end), f"{target['name']} d{index}",
                                      sigma=s.sigma))
        return out

    def base_ws(self, seed: int, truncation_psi: float = 1.0) -> np.ndarray:
        return edit.ws_from_seeds(self.cfg, self.variables, [int(seed)], truncation_psi)

    def render(self, seed: int, truncation_psi: float, sliders: Sequence[Slider],
               compare: int | None = None, scale: int = 0) -> dict[str, Any]:
        """-> {'images': [PNG bytes (, PNG bytes of the comparison)], 'ws': [1, num_ws, w_dim],
        'w_distance': float, 'predictions': [{name: p}] per image}."""
        base = self.base_ws(seed, truncation_psi)
        variants = [self.edits(sliders)] + ([self.edits(sliders, along=compare)]
                                            if compare is not None else [])
        ws_list = [edit.apply_edits(base, e) for e in variants]
        imgs = edit.synthesize(self.cfg, self.variables, np.concatenate(ws_list), batch=2)
        scale = scale or max(1, 256 // self.cfg.img_resolution)
        pngs = [images.png_bytes(np.kron(images.to_uint8(imgs[i:i + 1])[0],
                                         np.ones((scale, scale, 1), np.uint8)))
                for i in range(len(ws_list))]
        preds = []
        if self.cfg_c is not None:
            p = np.asarray(_predict(self.cfg_c)(self.params_c, imgs))
            preds = [dict(zip(self.attributes, map(float, row), strict=True)) for row in p]
        return {"images": pngs, "ws": ws_list[0],
                "w_distance": float(np.linalg.norm(ws_list[0] - base, axis=-1).max()),
                "predictions": preds}

    def export(self, folder: str, name: str, seed: int, truncation_psi: float,
               sliders: Sequence[Slider]) -> list[str]:
        """Writes NAME.png, NAME_ws.npy and NAME_directions.npz (the chosen edit as a named
        direction file, reloadable with --inputs)."""
        if not name or any(c in name for c in "/\\\0") or name.startswith("."):
            raise ValueError(f"export name {name!r}: expected a plain file name")
        out = self.render(seed, truncation_psi, sliders)
        edits = self.edits(sliders)
        paths = [f"{folder}/{name}.png", f"{folder}/{name}_ws.npy",
                 f"{folder}/{name}_directions.npz"]
        atomic.write_bytes(paths[0], out["images"][0])
        atomic.save_npy(paths[1], out["ws"].astype(np.float32))
        if edits:
            comp = np.stack([e.direction for e in edits])
            stdev = np.array([float(self.sets[s.set]["lat_stdev"][s.index]) for s in sliders])
            atomic.save_npz(
                paths[2], lat_comp=comp, lat_stdev=stdev, name=np.asarray(name),
                method=np.asarray(name),
                sources=np.asarray([self.sets[s.set]["name"] for s in sliders]),
                indices=np.asarray([s.index for s in sliders], np.int64),
                layer_ranges=np.asarray([e.layer_range for e in edits], np.int64),
                sigmas=np.asarray([s.sigma for s in sliders], np.float64))
        else:
            paths.pop()
        return paths
