"""Resumable runs: an output folder records what its run is and which parts of it are finished.

A run folder (discover, evaluate, run_paper) holds, next to the run's outputs:

  OUT/run_state.json              what the run is: command, settings (every value that decides
                                  the results, and a content fingerprint of each input file),
                                  status "running" or "finished", and the files it wrote
  OUT/partial/<part>.npz          a finished part (arrays plus a JSON "meta" entry)
  OUT/partial/<rows>/rows_*.npz   the finished rows of one long computation (sample i of the
                                  features, walk item i), saved as they finish

Rerunning the same command on the folder resumes it: finished parts are read back and only the
missing rows are computed. Row i of every long computation is a pure function of the run's seed
and i (`seeds.latents(key, i)`), so the resumed result equals an uninterrupted one however the
rows were batched; the batch size is therefore not part of the settings, and a run that ran out
of memory resumes with a smaller `--batch`. A folder holding another run (other settings or other
inputs) or foreign files is refused unless the caller clears it (`overwrite`). When the run
finishes, `partial/` is removed.

Only process 0 writes (`core.atomic`); every process reads, and in a multi-process run the
processes check that they read the same finished rows (the output folder must be on a filesystem
every process shares, as the discovery -> evaluation hand-over already needs).
"""
from __future__ import annotations

import dataclasses
import fnmatch
import glob
import hashlib
import json
import os
import shutil
import time
import zipfile
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from sparse_jax.core import atomic, sharding

STATE_FILE = "run_state.json"
PARTIAL_DIR = "partial"
FORMAT = "sparse-jax-run"
VERSION = 1
# Finished rows are written at most this often: a killed run loses at most this much work, and
# writing stays a negligible share of the run (a choice, not a measurement).
SAVE_EVERY_S = 30.0
_META = "__meta__"
_ROWS = "__rows__"
_PLAN = "__plan__"


class RunFolderError(ValueError):
    """The output folder holds something this run must not resume or mix with."""


def fingerprint(path: str) -> str:
    """sha256 of a file's bytes, or of a folder's files (relative names and bytes, sorted)."""
    h = hashlib.sha256()
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                h.update(os.path.relpath(full, path).encode("utf-8") + b"\0")
                _hash_file(h, full)
    else:
        _hash_file(h, path)
    return h.hexdigest()


def _hash_file(h: Any, path: str) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)


def digest(*arrays: Any) -> str:
    """A short sha256 of arrays' dtypes, shapes and bytes (what the rows of a computation mean)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype.str}{a.shape}".encode() + a.tobytes())
    return h.hexdigest()[:16]


def jsonable(obj: Any) -> Any:
    """Settings as JSON would give them back (tuples as lists, dataclasses as dicts)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    return json.loads(json.dumps(obj, sort_keys=True, default=atomic.json_default))


# ----------------------------------------------------------------------------- rows


class RowStore:
    """The finished rows of one computation, saved as they finish.

    `add` buffers rows and writes them (one atomic file) at most every `SAVE_EVERY_S` seconds;
    `flush` writes what is buffered (call it in a `finally`, so an interrupted loop keeps its
    last rows). Every process keeps the same buffer; process 0 writes.
    """

    def __init__(self, folder: str):
        self.folder = folder
        self.plan = ""
        self._buffer: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
        self._last_save = time.monotonic()
        self._count = len(self._files())

    def _files(self) -> list[str]:
        return sorted(glob.glob(os.path.join(self.folder, "rows_*.npz")))

    def load(self, num_rows: int, plan: str = "") -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(done bool [num_rows], {name: [num_rows, ...] filled where done, zeros elsewhere}).

        Args:
          plan: a digest of what row i means (`digest`); rows saved under another plan are
            not used (they are recomputed), and the rows saved from now on carry this one.
        """
        self.plan = plan
        done = np.zeros(num_rows, bool)
        out: dict[str, np.ndarray] = {}
        for path in self._files():
            with _open_npz(path) as z:
                if _ROWS not in z.files:
                    raise RunFolderError(f"{path}: not a file of saved rows; pass --overwrite "
                                         f"to start the run over")
                if _PLAN not in z.files or str(z[_PLAN]) != plan:
                    continue
                rows = np.asarray(z[_ROWS], np.int64)
                if rows.ndim != 1 or rows.size and (rows.min() < 0 or
                                                    rows.max() >= num_rows):
                    raise RunFolderError(f"{path}: rows outside [0, {num_rows}); pass "
                                         f"--overwrite to start the run over")
                for name in z.files:
                    if name in (_ROWS, _PLAN):
                        continue
                    values = z[name]
                    if values.shape[:1] != rows.shape:
                        raise RunFolderError(f"{path}: {name} has {values.shape[:1]} rows, "
                                             f"expected {rows.size}; pass --overwrite")
                    if name not in out:
                        out[name] = np.zeros((num_rows,) + values.shape[1:], values.dtype)
                    elif out[name].shape[1:] != values.shape[1:]:
                        raise RunFolderError(f"{path}: {name} rows of shape {values.shape[1:]}, "
                                             f"other files hold {out[name].shape[1:]}; pass "
                                             f"--overwrite")
                    out[name][rows] = values
                done[rows] = True
        _check_same_on_every_process(done, self.folder)
        return done, out

    def add(self, rows: np.ndarray, **arrays: np.ndarray) -> None:
        self._buffer.append((np.asarray(rows, np.int64),
                             {k: np.asarray(v) for k, v in arrays.items()}))
        if time.monotonic() - self._last_save >= SAVE_EVERY_S:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            rows = np.concatenate([r for r, _ in self._buffer])
            names = self._buffer[0][1].keys()
            arrays = {k: np.concatenate([a[k] for _, a in self._buffer]) for k in names}
            path = os.path.join(self.folder, f"rows_{self._count:06d}.npz")
            atomic.save_npz(path, **{_ROWS: rows, _PLAN: np.asarray(self.plan)}, **arrays)
            self._count += 1
            self._buffer = []
        self._last_save = time.monotonic()


def _check_same_on_every_process(done: np.ndarray, what: str) -> None:
    import jax

    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    digest = np.frombuffer(hashlib.sha256(np.packbits(done).tobytes()).digest()[:8], np.int32)
    multihost_utils.assert_equal(
        digest, f"{what}: the processes see different finished rows; a resumed multi-process "
                "run needs its output folder on a filesystem every process shares")


def _open_npz(path: str) -> Any:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise RunFolderError(f"{path}: unreadable partial result ({e}); pass --overwrite to "
                             f"start the run over") from None


# ----------------------------------------------------------------------------- the folder


@dataclasses.dataclass
class RunFolder:
    """One run's output folder and its finished parts (see the module docstring).

    Attributes:
      path: the output folder.
      command: the command whose run this is ("discover", "evaluate", "run_paper").
      settings: JSON settings that identify the run.
      resumed: the folder held this unfinished run when it was opened.
      finished: the folder held this run, finished, with all its files.
      prefix: the namespace of this view's parts (`child`).
    """

    path: str
    command: str
    settings: dict[str, Any]
    resumed: bool = False
    finished: bool = False
    prefix: str = ""

    def child(self, name: str) -> "RunFolder":
        """A view whose parts live under `name/` (a stage of a longer run)."""
        return dataclasses.replace(self, prefix=f"{self.prefix}{name}/")

    def _part(self, name: str) -> str:
        return os.path.join(self.path, PARTIAL_DIR, *f"{self.prefix}{name}".split("/"))

    def has(self, name: str) -> bool:
        return os.path.isfile(self._part(name) + ".npz")

    def save(self, name: str, arrays: Mapping[str, Any] | None = None,
             meta: Mapping[str, Any] | None = None) -> None:
        """Records a finished part: arrays (None values left out) and JSON metadata."""
        kept = {k: np.asarray(v) for k, v in (arrays or {}).items() if v is not None}
        text = json.dumps(dict(meta or {}), sort_keys=True, default=atomic.json_default)
        atomic.save_npz(self._part(name) + ".npz", **{_META: np.asarray(text)}, **kept)

    def load(self, name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, meta) of a part `save`d before."""
        path = self._part(name) + ".npz"
        with _open_npz(path) as z:
            if _META not in z.files:
                raise RunFolderError(f"{path}: not a saved part of a run; pass --overwrite")
            arrays = {k: z[k] for k in z.files if k != _META}
            meta = json.loads(str(z[_META]))
        return arrays, meta

    def rows(self, name: str) -> RowStore:
        return RowStore(self._part(name))

    def finish(self, outputs: Sequence[str]) -> list[str]:
        """Marks the run finished: records its files (matching `outputs`) and drops partial/."""
        files = [n for n in _matching(self.path, outputs) if n not in (STATE_FILE, PARTIAL_DIR)]
        if sharding.is_main_process():
            shutil.rmtree(os.path.join(self.path, PARTIAL_DIR), ignore_errors=True)
        _write_state(self.path, self.command, self.settings, "finished", files)
        sharding.sync("run folder finished")
        self.finished = True
        return files


def rows(checkpoint: RunFolder | None, name: str) -> RowStore | None:
    """`checkpoint.rows(name)`, or None when the run keeps nothing (no checkpoint)."""
    return None if checkpoint is None else checkpoint.rows(name)


def child(checkpoint: RunFolder | None, name: str) -> RunFolder | None:
    """`checkpoint.child(name)`, or None when the run keeps nothing (no checkpoint)."""
    return None if checkpoint is None else checkpoint.child(name)


def _matching(path: str, patterns: Iterable[str]) -> list[str]:
    names = os.listdir(path) if os.path.isdir(path) else []
    return sorted(n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns))


def remove_outputs(path: str, patterns: Iterable[str]) -> None:
    """Removes the entries of folder `path` matching the glob `patterns` (files or folders)."""
    for name in _matching(path, patterns):
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.remove(full)


def _write_state(path: str, command: str, settings: Mapping[str, Any], status: str,
                 files: Sequence[str] = ()) -> None:
    atomic.write_json(os.path.join(path, STATE_FILE), {
        "format": FORMAT, "version": VERSION, "command": command, "status": status,
        "settings": settings, "files": list(files)})


def read_state(path: str) -> dict[str, Any] | None:
    """The folder's run_state.json, or None when there is none."""
    file = os.path.join(path, STATE_FILE)
    if not os.path.isfile(file):
        return None
    try:
        with open(file, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError) as e:
        raise RunFolderError(f"{file}: unreadable ({e}); pass --overwrite to start over") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RunFolderError(f"{file}: not a sparse-jax run state; pass --overwrite to replace "
                             f"the folder's outputs")
    return state


def settings_diff(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = ""
                  ) -> list[str]:
    """'name: X in the folder, Y now' for every value that differs (nested keys dotted)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "(unset)"), new.get(key, "(unset)")
        if isinstance(a, dict) and isinstance(b, dict):
            out += settings_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            if key == "fingerprint" or str(key).endswith("_fingerprint"):
                out.append(f"{prefix}{key}: other file contents")
            else:
                out.append(f"{prefix}{key}: {_short(a)} in the folder, {_short(b)} now")
    return out


def _short(v: Any) -> str:
    text = json.dumps(v)
    return text if len(text) <= 40 else text[:37] + "..."


def open_run_folder(path: str, command: str, settings: Mapping[str, Any],
                    outputs: Sequence[str], overwrite: bool = False, flag: str = "--out"
                    ) -> RunFolder:
    """Opens `path` for a run of `command` with `settings`: new, resumed or already finished.

    Args:
      settings: JSON-able values that decide the run's results (fingerprints of its inputs
        included); a folder holding a run with other settings is refused.
      outputs: glob patterns of the files the command writes; `overwrite` removes those (and the
        run state) and nothing else.

    Returns:
      A RunFolder; `.resumed` when the folder held this unfinished run, `.finished` when it
      held it finished with every file it wrote still there (nothing to do).

    Raises:
      RunFolderError: the folder holds other files or another run, and not `overwrite`.
    """
    settings = jsonable(dict(settings))
    if os.path.exists(path) and not os.path.isdir(path):
        raise RunFolderError(f"{flag} {path}: exists and is not a folder")
    used = [n for n in (sorted(os.listdir(path)) if os.path.isdir(path) else [])
            if not n.startswith(".write-test-")]
    state = None if overwrite or not used else read_state(path)
    run = RunFolder(path, command, settings)
    if used and not overwrite:
        if state is None:
            shown = ", ".join(used[:4]) + (", ..." if len(used) > 4 else "")
            raise RunFolderError(f"{flag} {path}: folder already holds files ({shown}) but no "
                                 f"{STATE_FILE} of a run to resume; choose a new folder or pass "
                                 f"--overwrite to replace {command}'s outputs")
        if state.get("command") != command:
            raise RunFolderError(f"{flag} {path}: holds a {state.get('command')} run, not a "
                                 f"{command} run; choose a new folder or pass --overwrite")
        diff = settings_diff(state.get("settings") or {}, settings)
        if diff:
            shown = "; ".join(diff[:3]) + (f"; and {len(diff) - 3} more" if len(diff) > 3 else "")
            status = "finished" if state.get("status") == "finished" else "unfinished"
            todo = ("choose a new folder or pass --overwrite to replace it" if status == "finished"
                    else "rerun with its settings to resume it, choose a new folder, or pass "
                         "--overwrite")
            raise RunFolderError(f"{flag} {path}: holds a {status} {command} run with other "
                                 f"settings ({shown}); {todo}")
        files = state.get("files") or []
        if state.get("status") == "finished" and files and all(
                os.path.exists(os.path.join(path, f)) for f in files):
            run.finished = True
            return run
        run.resumed = state.get("status") == "running"
    sharding.sync("run folder checked")  # every process has read the folder before it changes
    if sharding.is_main_process():
        if overwrite:
            remove_outputs(path, [*outputs, STATE_FILE, PARTIAL_DIR])
        os.makedirs(path, exist_ok=True)
    _write_state(path, command, settings, "running")
    sharding.sync("run folder opened")
    return run

