"""Atomic file output: write to a temporary file in the same folder, then rename.

An interrupted run therefore never leaves a half-written file under the final name. In a
multi-process run (`--multihost`) only process 0 writes: every output file of a run goes through
`write_bytes`, which returns without writing on the other processes, so a run's folder is never
written by two hosts at once.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from typing import Any, Iterator

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """Yields a temporary path next to `path`; renames it onto `path` on success."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                               suffix=suffix + ".tmp")
    os.close(fd)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_bytes(path: str, data: bytes) -> None:
    import jax

    if jax.process_index() != 0:
        return
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=json_default) + "\n")


def save_npz(path: str, **arrays: Any) -> None:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    write_bytes(path, buf.getvalue())


def save_npy(path: str, array: Any) -> None:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array))
    write_bytes(path, buf.getvalue())


def save_figure(path: str, fig: Any, **kwargs: Any) -> None:
    """Saves a matplotlib figure atomically (format from the extension of `path`)."""
    buf = io.BytesIO()
    fmt = os.path.splitext(path)[1].lstrip(".") or "png"
    fig.savefig(buf, format=fmt, **kwargs)
    write_bytes(path, buf.getvalue())


def json_default(o: Any) -> Any:
    """numpy arrays and scalars for json.dumps."""
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
