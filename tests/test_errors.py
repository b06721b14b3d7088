"""Every user error of every command is one line naming the flag or file, with a non-zero exit
and no traceback; outputs are checked before any expensive work."""
import os
import subprocess
import sys

import numpy as np
import pytest

from sparse_jax.cli import (
    convert,
    discover,
    edit,
    evaluate,
    generate,
    render,
    run_paper,
    train_classifier,
    train_stylegan,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W_DIM, NUM_WS = 64, 8  # the embedded MNIST generator


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_inputs")
    rng = np.random.default_rng(0)
    good = str(d / "good.npz")
    np.savez(good, lat_comp=rng.normal(size=(4, W_DIM)).astype(np.float32),
             lat_stdev=np.ones(4), method=np.asarray("test"))
    wrong = str(d / "wrong_wdim.npz")
    np.savez(wrong, lat_comp=rng.normal(size=(3, 32)).astype(np.float32), lat_stdev=np.ones(3))
    text = str(d / "text.npz")
    with open(text, "w") as f:
        f.write("not an archive\n")
    nan = str(d / "nan_ws.npy")
    ws = rng.normal(size=(2, NUM_WS, W_DIM)).astype(np.float32)
    ws[1, 3, 5] = np.nan
    np.save(nan, ws)
    plain = str(d / "a_file")
    with open(plain, "w") as f:
        f.write("x")
    used = d / "used"
    used.mkdir()
    (used / "old_result.txt").write_text("from another run")
    return dict(good=good, wrong=wrong, text=text, nan=nan, missing=str(d / "missing.npz"),
                unwritable=os.path.join(plain, "sub"), used=str(used), d=str(d))


def _one_line_error(mod, argv, capsys, *expected):
    rc = mod.main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc != 0, (argv, err)
    assert len(lines) == 1, (argv, err)
    assert "Traceback" not in err
    assert lines[0].startswith(f"{mod.PROG}: error: "), lines[0]
    for e in expected:
        assert e in lines[0], (e, lines[0])
    return lines[0]


def _cases(f):
    out = os.path.join(f["d"], "out.png")
    return [
        # generate
        (generate, ["--out", out], ["--seeds", "--z", "--ws"]),
        (generate, ["--seeds", "0", "--out", out[:-4] + ".jpg"], ["--out", ".jpg"]),
        (generate, ["--ws", f["nan"], "--out", out], ["--ws", "nan_ws.npy", "NaN"]),
        (generate, ["--ws", f["text"], "--out", out], ["--ws", "text.npz", ".npy"]),
        (generate, ["--seeds", "0", "--out", os.path.join(f["unwritable"], "x.png")],
         ["--out", "a_file"]),
        (generate, ["--seeds", "9-2", "--out", out], ["--seeds", "9-2"]),
        (generate, ["--seeds", "0", "--out", out, "--generator", f["missing"]],
         ["--generator"]),
        (generate, ["--seeds", "0", "--out", out, "--batch", "many"], ["--batch", "many"]),
        # render
        (render, ["--directions", f["wrong"], "--out", out], ["wrong_wdim.npz", "w_dim"]),
        (render, ["--directions", f["missing"], "--out", out],
         ["--directions", "missing.npz", "not found"]),
        (render, ["--directions", f["text"], "--out", out], ["--directions", "text.npz", ".npz"]),
        (render, ["--directions", f["good"], "--out", out[:-4] + ".jpg"], ["--out", ".jpg"]),
        (render, ["--directions", f["good"], "--out", os.path.join(f["unwritable"], "x.png")],
         ["--out", "a_file"]),
        (render, ["--directions", f["good"], "--out", out, "--seeds", "a"], ["--seeds"]),
        (render, ["--directions", f["good"], "--out", out, "--layer_range", "0"],
         ["--layer_range"]),
        # evaluate
        (evaluate, ["--directions", f["wrong"], "--out", os.path.join(f["d"], "e1")],
         ["wrong_wdim.npz", "w_dim"]),
        (evaluate, ["--directions", f["missing"], "--out", os.path.join(f["d"], "e2")],
         ["missing.npz", "not found"]),
        (evaluate, ["--directions", f["text"], "--out", os.path.join(f["d"], "e3")],
         ["text.npz", ".npz"]),
        (evaluate, ["--out", os.path.join(f["d"], "e4")], ["--directions"]),
        (evaluate, ["--directions", f["good"], "--out", f["used"]], ["--out", "--overwrite"]),
        (evaluate, ["--directions", f["good"], "--out", f["unwritable"]], ["--out", "a_file"]),
        (evaluate, ["--directions", f["good"], "--out", "x", "--d_max", "nan"],
         ["--d_max", "finite"]),
        (evaluate, ["--directions", f["good"], "--out", "x", "--num_eval_seeds", "0"],
         ["num_eval_seeds"]),
        # discover
        (discover, ["--out", f["used"]], ["--out", "--overwrite"]),
        (discover, ["--out", f["unwritable"]], ["--out", "a_file"]),
        (discover, ["--out", os.path.join(f["d"], "d1"), "--methods", "pca,ica"],
         ["--methods", "ica"]),
        (discover, ["--out", os.path.join(f["d"], "d2"), "--preset", "huge"], ["--preset"]),
        # run_paper
        (run_paper, ["--out", f["used"]], ["--out", "--overwrite"]),
        (run_paper, ["--out", f["unwritable"]], ["--out", "a_file"]),
        (run_paper, ["--out", os.path.join(f["d"], "p1"), "--methods", "ica"],
         ["--methods", "ica"]),
        (run_paper, ["--out", os.path.join(f["d"], "p2"), "--smoke", "--paper_scale"],
         ["exclude each other"]),
        # edit
        (edit, ["--seeds", "0", "--edit", f"{f['wrong']}:0:1", "--out", out],
         ["wrong_wdim.npz", "w_dim"]),
        (edit, ["--seeds", "0", "--edit", f"{f['missing']}:0:1", "--out", out],
         ["--edit", "missing.npz", "not found"]),
        (edit, ["--seeds", "0", "--edit", f"{f['text']}:0:1", "--out", out],
         ["--edit", "text.npz", ".npz"]),
        (edit, ["--seeds", "0", "--edit", f"{f['good']}:9:1", "--out", out],
         ["good.npz", "index 9"]),
        (edit, ["--ws", f["nan"], "--edit", f"{f['good']}:0:1", "--out", out], ["--ws", "NaN"]),
        (edit, ["--edit", f"{f['good']}:0:1", "--out", out], ["--seeds"]),
        (edit, ["--seeds", "0", "--edit", f"{f['good']}:0:1", "--out", out[:-4] + ".jpg"],
         ["--out", ".jpg"]),
        (edit, ["--seeds", "0", "--edit", f"{f['good']}:0:1",
                "--out", os.path.join(f["unwritable"], "x.png")], ["--out", "a_file"]),
        (edit, ["--seeds", "0", "--edit", f"{f['good']}:zero:1", "--out", out], ["INDEX"]),
        (edit, ["--seeds", "0", "--edit", f"{f['good']}:0:1:0,9", "--out", out],
         ["layer range", "num_ws=8"]),
        # training and conversion
        (train_classifier, ["--data", f["missing"], "--out", os.path.join(f["d"], "c1")],
         ["--data", "missing.npz"]),
        (train_classifier, ["--data", "sklearn_digits", "--out", f["used"]], ["--overwrite"]),
        (train_stylegan, ["--data", f["missing"], "--workdir", os.path.join(f["d"], "t")],
         ["--data"]),
        (train_stylegan, ["--data", "sklearn_digits", "--workdir", os.path.join(f["d"], "t"),
                          "--batch", "6"], ["--batch", "pack"]),
        (convert, ["--src", f["missing"], "--out", os.path.join(f["d"], "g")],
         ["--src", "missing.npz"]),
        (convert, ["--src", f["text"], "--out", f["used"]], ["--overwrite"]),
    ]


def test_every_bad_input_is_one_clear_line(files, capsys):
    for mod, argv, expected in _cases(files):
        _one_line_error(mod, argv, capsys, *expected)
    # nothing was written by a refused command
    assert sorted(os.listdir(files["used"])) == ["old_result.txt"]
    assert not os.path.exists(os.path.join(files["d"], "out.png"))


def test_overwrite_replaces_only_the_commands_outputs(tmp_path, capsys):
    out = tmp_path / "disc"
    out.mkdir()
    (out / "directions_sefa.npz").write_bytes(b"stale")
    (out / "notes.txt").write_text("mine")
    assert discover.main(["--out", str(out), "--methods", "pca-w", "--preset", "smoke",
                          "--noprogress"]) != 0  # used folder
    assert discover.main(["--out", str(out), "--methods", "pca-w", "--preset", "smoke",
                          "--noprogress", "--overwrite"]) == 0
    names = sorted(os.listdir(out))
    assert "directions_sefa.npz" not in names and "notes.txt" in names
    assert "directions_pca-w.npz" in names and "summary.json" in names


def test_binary_subprocess_one_line_and_console_module(files):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bin", "edit.py"), "--seeds", "0", "--edit",
         f"{files['wrong']}:0:1", "--out", os.path.join(files["d"], "x.png")],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "wrong_wdim.npz" in proc.stderr and "w_dim" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "sparse_jax.cli.main", "generate", "--seeds",
                           "0", "--out", "x.jpg"], capture_output=True, text=True, timeout=300,
                          env=env, cwd=ROOT)
    assert proc.returncode == 1 and ".jpg" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bin", "evaluate.py"), "--help"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and "--preset" in proc.stdout
