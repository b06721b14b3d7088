"""Interrupted runs resume from what they finished (core.resume): rows, parts, folders, commands.

Interruptions are injected by a compiled step that raises KeyboardInterrupt (what Ctrl-C raises)
after a number of calls; the resumed result must equal an uninterrupted run, and the resumed run
must compute only what was missing (its step calls are counted).
"""
import functools
import json
import os

import conftest  # noqa: F401  (4 CPU devices before JAX starts)
import jax
import numpy as np
import pytest
from test_walks import brightness_predict

from sparse_jax.cli import discover as discover_cli
from sparse_jax.cli import evaluate as evaluate_cli
from sparse_jax.cli import run_paper as run_paper_cli
from sparse_jax.core import resume, seeds, stopping
from sparse_jax.discovery import features
from sparse_jax.discovery import run as discover
from sparse_jax.evaluation import walks
from sparse_jax.io import model_dirs
from sparse_jax.models import stylegan2 as sg

CFG = sg.GeneratorConfig(z_dim=8, w_dim=8, img_resolution=8, img_channels=1, mapping_layers=2,
                         channel_base=64, channel_max=8)


@functools.lru_cache(maxsize=1)
def _variables():
    return sg.init_generator(jax.random.key(0), CFG)


def count_steps(monkeypatch, module, stop_after=None):
    """Wraps `module._compiled_step`: counts calls, raises KeyboardInterrupt after `stop_after`."""
    orig = getattr(module._compiled_step, "unwrapped", module._compiled_step)
    calls = {"n": 0}

    def compiled(*args, **kwargs):
        step = orig(*args, **kwargs)

        def counted(*a):
            if stop_after is not None and calls["n"] >= stop_after:
                raise KeyboardInterrupt
            calls["n"] += 1
            return step(*a)

        return counted

    compiled.unwrapped = orig
    monkeypatch.setattr(module, "_compiled_step", compiled)
    return calls


# ----------------------------------------------------------------------------- rows and folders


def test_row_store_keeps_rows_of_its_plan_only(tmp_path):
    store = resume.RowStore(str(tmp_path / "rows"))
    store.load(10, plan="a")
    store.add(np.array([0, 1, 2]), x=np.arange(6.0).reshape(3, 2))
    store.add(np.array([7]), x=np.array([[9.0, 9.5]]))
    assert not os.path.exists(store.folder)  # buffered: nothing written before SAVE_EVERY_S
    store.flush()
    store.flush()  # nothing buffered: no empty file
    assert len(os.listdir(store.folder)) == 1
    done, saved = resume.RowStore(store.folder).load(10, plan="a")
    np.testing.assert_array_equal(np.nonzero(done)[0], [0, 1, 2, 7])
    np.testing.assert_array_equal(saved["x"][7], [9.0, 9.5])
    np.testing.assert_array_equal(saved["x"][:3], np.arange(6.0).reshape(3, 2))
    done, saved = resume.RowStore(store.folder).load(10, plan="b")  # rows meant something else
    assert not done.any() and saved == {}
    with pytest.raises(resume.RunFolderError, match="rows outside"):
        resume.RowStore(store.folder).load(5, plan="a")
    with open(os.path.join(store.folder, "rows_000001.npz"), "wb") as f:
        f.write(b"not a zip")
    with pytest.raises(resume.RunFolderError, match="rows_000001.npz.*--overwrite"):
        resume.RowStore(store.folder).load(10, plan="a")


def test_row_store_saves_every_interval(tmp_path, monkeypatch):
    monkeypatch.setattr(resume, "SAVE_EVERY_S", 0.0)
    store = resume.RowStore(str(tmp_path / "rows"))
    store.load(4)
    for i in range(3):
        store.add(np.array([i]), y=np.array([float(i)]))
    assert len(os.listdir(store.folder)) == 3  # a killed run keeps what it had finished


def test_run_folder_new_resumed_refused_finished(tmp_path):
    out = str(tmp_path / "run")
    outputs = ("table.md",)
    settings = {"config": {"k": 5, "seed": 0}, "generator_fingerprint": "abc"}
    run = resume.open_run_folder(out, "discover", settings, outputs)
    assert not run.resumed and not run.finished
    state = resume.read_state(out)
    assert state["status"] == "running" and state["settings"] == settings
    run.child("repeat_0").save("part", {"a": np.ones(3)}, {"seconds": 1.5})

    again = resume.open_run_folder(out, "discover", settings, outputs)
    assert again.resumed and again.child("repeat_0").has("part")
    arrays, meta = again.child("repeat_0").load("part")
    np.testing.assert_array_equal(arrays["a"], np.ones(3))
    assert meta == {"seconds": 1.5}

    other = {"config": {"k": 4, "seed": 0}, "generator_fingerprint": "xyz"}
    with pytest.raises(resume.RunFolderError) as e:
        resume.open_run_folder(out, "discover", other, outputs)
    msg = str(e.value)
    assert "config.k: 5 in the folder, 4 now" in msg and "generator_fingerprint: other file" in msg
    assert "--out" in msg and "--overwrite" in msg and "\n" not in msg
    with pytest.raises(resume.RunFolderError, match="holds a discover run, not a evaluate"):
        resume.open_run_folder(out, "evaluate", settings, outputs)

    with open(os.path.join(out, "table.md"), "w") as f:
        f.write("| done |")
    with open(os.path.join(out, "notes.txt"), "w") as f:
        f.write("mine")
    assert again.finish(outputs) == ["table.md"]
    assert not os.path.exists(os.path.join(out, resume.PARTIAL_DIR))
    assert resume.open_run_folder(out, "discover", settings, outputs).finished
    with pytest.raises(resume.RunFolderError, match="finished discover run.*new folder"):
        resume.open_run_folder(out, "discover", other, outputs)
    os.remove(os.path.join(out, "table.md"))  # a finished run missing a file is run again
    rerun = resume.open_run_folder(out, "discover", settings, outputs)
    assert not rerun.finished and not rerun.resumed

    replaced = resume.open_run_folder(out, "discover", other, outputs, overwrite=True)
    assert not replaced.resumed and resume.read_state(out)["settings"] == other
    assert os.path.exists(os.path.join(out, "notes.txt"))  # only the command's outputs go


def test_folder_without_a_run_state_is_refused(tmp_path):
    (tmp_path / "old.npz").write_bytes(b"x")
    with pytest.raises(resume.RunFolderError, match="no run_state.json"):
        resume.open_run_folder(str(tmp_path), "evaluate", {}, ("*.npz",))
    (tmp_path / resume.STATE_FILE).write_text("{not json")
    with pytest.raises(resume.RunFolderError, match="run_state.json: unreadable"):
        resume.open_run_folder(str(tmp_path), "evaluate", {}, ("*.npz",))


def test_fingerprint_follows_content(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    (a / "w.bin").write_bytes(b"123")
    before = resume.fingerprint(str(a))
    (a / "w.bin").write_bytes(b"124")
    assert resume.fingerprint(str(a)) != before
    (a / "w.bin").write_bytes(b"123")
    assert resume.fingerprint(str(a)) == before


# ----------------------------------------------------------------------------- library loops


def test_sample_features_resume_computes_only_the_missing_samples(tmp_path, monkeypatch):
    key = seeds.stream_key(0, seeds.FIT_STREAM)
    n = 40
    label = jax.tree_util.Partial(lambda img: (img.mean(axis=(1, 2, 3)) > 0).astype(np.int32))
    full = features.sample_features(CFG, _variables(), key, n, batch_size=8, label_fn=label,
                                    progress=False)
    rows = str(tmp_path / "rows")
    calls = count_steps(monkeypatch, features, stop_after=3)
    with pytest.raises(KeyboardInterrupt):
        features.sample_features(CFG, _variables(), key, n, batch_size=8, label_fn=label,
                                 progress=False, rows=resume.RowStore(rows))
    assert calls["n"] == 3 and os.listdir(rows)  # the finished batches were written
    calls = count_steps(monkeypatch, features)
    got = features.sample_features(CFG, _variables(), key, n, batch_size=16, label_fn=label,
                                   progress=False, rows=resume.RowStore(rows))
    # 2 of the 3 batches were collected before the interruption (one was in flight): 24 left.
    assert calls["n"] == 2
    np.testing.assert_allclose(got.x, full.x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.w, full.w, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got.labels, full.labels)
    calls = count_steps(monkeypatch, features)
    again = features.sample_features(CFG, _variables(), key, n, batch_size=16, label_fn=label,
                                     progress=False, rows=resume.RowStore(rows))
    assert calls["n"] == 0  # everything was saved
    np.testing.assert_array_equal(again.x, got.x)
    # Another key means other samples: the saved rows are not used.
    calls = count_steps(monkeypatch, features)
    features.sample_features(CFG, _variables(), seeds.stream_key(1, seeds.FIT_STREAM), n,
                             batch_size=16, label_fn=label, progress=False,
                             rows=resume.RowStore(rows))
    assert calls["n"] == 3


def test_run_walks_resume_computes_only_the_missing_items(tmp_path, monkeypatch):
    key = seeds.stream_key(0, seeds.IMAGE_STREAM)
    dirs = np.eye(CFG.w_dim)[:3]
    dist = np.array([0.0, 0.5, 1.5])
    seed_idx = np.arange(6)
    predict = jax.tree_util.Partial(brightness_predict)
    full = walks.run_walks(CFG, _variables(), key, seed_idx, dirs, dist, predict_fn=predict,
                           chunk=8)
    rows = str(tmp_path / "walk")
    calls = count_steps(monkeypatch, walks, stop_after=4)
    with pytest.raises(KeyboardInterrupt):
        walks.run_walks(CFG, _variables(), key, seed_idx, dirs, dist, predict_fn=predict,
                        chunk=8, rows=resume.RowStore(rows))
    calls = count_steps(monkeypatch, walks)
    got = walks.run_walks(CFG, _variables(), key, seed_idx, dirs, dist, predict_fn=predict,
                          chunk=4, rows=resume.RowStore(rows))
    items = seed_idx.size * (1 + dirs.shape[0] * 2 * 2)  # offset 0 shared per seed
    assert calls["n"] == -(-(items - 8 * 3) // 4)  # 3 chunks of 8 were collected, 4 was in flight
    np.testing.assert_allclose(got.preds, full.preds, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="predictions only"):
        walks.run_walks(CFG, _variables(), key, seed_idx, dirs, dist, return_images=True,
                        rows=resume.RowStore(rows))


def test_a_signal_stops_a_walk_at_a_safe_point_keeping_the_work_in_flight(tmp_path, monkeypatch):
    import signal

    key = seeds.stream_key(0, seeds.IMAGE_STREAM)
    dirs, dist, seed_idx = np.eye(CFG.w_dim)[:3], np.array([0.0, 0.5, 1.5]), np.arange(6)
    predict = jax.tree_util.Partial(brightness_predict)
    full = walks.run_walks(CFG, _variables(), key, seed_idx, dirs, dist, predict_fn=predict,
                           chunk=8)
    orig = walks._compiled_step
    calls = {"n": 0}

    def compiled(*args, **kwargs):
        step = orig(*args, **kwargs)

        def signalled(*a):
            calls["n"] += 1
            if calls["n"] == 3:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the third chunk runs
            return step(*a)

        return signalled

    monkeypatch.setattr(walks, "_compiled_step", compiled)
    rows = str(tmp_path / "walk")
    with stopping.stop_at_safe_points(), pytest.raises(stopping.StopRequested):
        walks.run_walks(CFG, _variables(), key, seed_idx, dirs, dist, predict_fn=predict,
                        chunk=8, rows=resume.RowStore(rows))
    assert calls["n"] == 3 and not stopping.requested()  # handlers and flag restored
    monkeypatch.setattr(walks, "_compiled_step", orig)
    counted = count_steps(monkeypatch, walks)
    got = walks.run_walks(CFG, _variables(), key, seed_idx, dirs, dist, predict_fn=predict,
                          chunk=8, rows=resume.RowStore(rows))
    items = seed_idx.size * (1 + dirs.shape[0] * 2 * 2)
    assert counted["n"] == -(-(items - 3 * 8) // 8)  # all 3 dispatched chunks were kept
    np.testing.assert_allclose(got.preds, full.preds, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- commands


@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("gen") / "g")
    cfg = sg.GeneratorConfig(z_dim=16, w_dim=16, img_resolution=16, mapping_layers=2,
                             channel_base=128, channel_max=16)
    model_dirs.save_generator(path, cfg, sg.init_generator(jax.random.key(1), cfg))
    return path


def _discover_argv(gen, out, *more):
    return ["--generator", gen, "--out", out, "--num_samples", "64", "--k", "3",
            "--num_regression_samples", "48", "--batch", "16", "--methods", "pca-w,pca,sca",
            "--noprogress", *more]


def test_discover_resumes_an_interrupted_run(tiny_generator, tmp_path, monkeypatch, capsys):
    ref, out = str(tmp_path / "ref"), str(tmp_path / "out")
    assert discover_cli.main(_discover_argv(tiny_generator, ref)) == 0
    orig = discover._fit_method

    def interrupted(method, *a, **k):
        if method == "sca":
            raise KeyboardInterrupt
        return orig(method, *a, **k)

    monkeypatch.setattr(discover, "_fit_method", interrupted)
    capsys.readouterr()
    assert discover_cli.main(_discover_argv(tiny_generator, out)) == 130
    err = capsys.readouterr().err.strip()
    assert err.endswith("rerun the same command to resume") and "\n" not in err
    assert resume.read_state(out)["status"] == "running"

    # The rerun (another batch size is allowed) fits only SCA and samples nothing again.
    fitted = []
    monkeypatch.setattr(discover, "_fit_method",
                        lambda m, *a, **k: fitted.append(m) or orig(m, *a, **k))
    calls = count_steps(monkeypatch, features)
    assert discover_cli.main(_discover_argv(tiny_generator, out, "--batch", "32")) == 0
    assert "resuming the unfinished discover run" in capsys.readouterr().out
    assert fitted == ["sca"] and calls["n"] == 0
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["resumed_methods"] == ["pca-w", "pca"]
    for m in ("pca-w", "pca", "sca"):
        a = np.load(os.path.join(ref, f"directions_{m}.npz"))
        b = np.load(os.path.join(out, f"directions_{m}.npz"))
        for name in ("lat_comp", "lat_stdev", "act_comp", "var_ratio"):
            np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-6, err_msg=m + name)
    state = resume.read_state(out)
    assert state["status"] == "finished" and "summary.json" in state["files"]
    assert not os.path.exists(os.path.join(out, resume.PARTIAL_DIR))

    # Finished: nothing to do. Other settings: refused in one line naming the difference.
    assert discover_cli.main(_discover_argv(tiny_generator, out)) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert discover_cli.main(_discover_argv(tiny_generator, out, "--k", "2")) == 1
    err = capsys.readouterr().err.strip()
    assert "config.k: 3 in the folder, 2 now" in err and "--overwrite" in err
    assert "\n" not in err


EVAL_SIZES = ["--num_assign_seeds", "4", "--num_eval_seeds", "8", "--num_distances", "3",
              "--d_max_samples", "200", "--reach_points", "4", "--num_directions", "3",
              "--grid_seeds", "1", "--grid_columns", "3", "--batch", "16", "--noprogress"]


@pytest.fixture(scope="module")
def mnist_directions(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("mnist_dirs"))
    cfg, variables = model_dirs.load_generator(model_dirs.default_generator_path())
    discover.run_discovery(cfg, variables, methods="pca-w,sefa", num_samples=64, k=3,
                           out=out, progress=False)
    return [os.path.join(out, f"directions_{m}.npz") for m in ("pca-w", "sefa")]


def test_evaluate_resumes_an_interrupted_run(mnist_directions, tmp_path, monkeypatch, capsys):
    ref, out = str(tmp_path / "ref"), str(tmp_path / "out")
    argv = ["--directions", *mnist_directions, *EVAL_SIZES]
    calls = count_steps(monkeypatch, walks)
    assert evaluate_cli.main([*argv, "--out", ref]) == 0
    total = calls["n"]
    # Interrupt in the middle of the walks (some of the first method's chunks are finished).
    calls = count_steps(monkeypatch, walks, stop_after=total // 2)
    assert evaluate_cli.main([*argv, "--out", out]) == 130
    calls = count_steps(monkeypatch, walks)
    assert evaluate_cli.main([*argv, "--out", out]) == 0
    assert "resuming the unfinished evaluate run" in capsys.readouterr().out
    # What the first attempt collected is not walked again: at most one chunk in flight and one
    # re-aligned chunk per walk (2 methods x 2 walks) are computed twice.
    assert total - total // 2 <= calls["n"] <= total - total // 2 + 5
    a = json.load(open(os.path.join(ref, "table1.json")))
    b = json.load(open(os.path.join(out, "table1.json")))
    for m in a["methods"]:
        for key in ("S_e", "S_d", "efficiency"):
            assert b["methods"][m][key] == pytest.approx(a["methods"][m][key], rel=1e-5,
                                                         abs=1e-7, nan_ok=True), (m, key)
    np.testing.assert_allclose(np.load(os.path.join(out, "preds_sefa.npz"))["preds"],
                               np.load(os.path.join(ref, "preds_sefa.npz"))["preds"],
                               rtol=1e-5, atol=1e-6)
    assert sorted(f for f in os.listdir(out) if f.endswith(".png")) == sorted(
        f for f in os.listdir(ref) if f.endswith(".png"))
    # Another direction file is another run.
    assert evaluate_cli.main(["--directions", mnist_directions[0], *EVAL_SIZES,
                              "--out", out]) == 1
    assert "directions" in capsys.readouterr().err


def test_run_paper_resumes_in_its_evaluation(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "paper")
    argv = ["--out", out, "--num_samples", "64", "--k", "3", "--num_assign_seeds", "4",
            "--num_eval_seeds", "8", "--num_distances", "3", "--d_max_samples", "200",
            "--methods", "pca-w,sefa", "--bootstrap_draws", "20", "--noprogress"]
    orig = walks.run_walks

    def interrupted(*a, **k):
        if k.get("desc") == "sefa: walks":
            raise KeyboardInterrupt  # the evaluation of the second method
        return orig(*a, **k)

    monkeypatch.setattr(walks, "run_walks", interrupted)
    assert run_paper_cli.main(argv) == 130
    partial = os.path.join(out, resume.PARTIAL_DIR, "repeat_0")
    assert os.path.isdir(os.path.join(partial, "discovery", "fit_samples"))
    assert os.path.isdir(os.path.join(partial, "evaluation", "walks_pca-w"))

    steps = count_steps(monkeypatch, walks)
    per_walk = {}

    def recorded(*a, **k):
        before = steps["n"]
        result = orig(*a, **k)
        per_walk[k.get("desc")] = steps["n"] - before
        return result

    monkeypatch.setattr(walks, "run_walks", recorded)
    feature_calls = count_steps(monkeypatch, features)
    fitted = []
    fit = discover._fit_method
    monkeypatch.setattr(discover, "_fit_method",
                        lambda m, *a, **k: fitted.append(m) or fit(m, *a, **k))
    capsys.readouterr()
    assert run_paper_cli.main(argv) == 0
    assert "resuming the unfinished run_paper run" in capsys.readouterr().out
    assert feature_calls["n"] == 0 and fitted == []  # discovery came back from its parts
    assert per_walk["pca-w: walks"] == 0 and per_walk["sefa: walks"] > 0
    table = json.load(open(os.path.join(out, "table1.json")))
    assert sorted(table["methods"]) == ["pca-w", "sefa"]
    assert os.path.isfile(os.path.join(out, "fig5_curves.png"))
    assert resume.read_state(out)["status"] == "finished"
    assert not os.path.exists(os.path.join(out, resume.PARTIAL_DIR))


def test_sigterm_keeps_the_finished_samples(tmp_path):
    """A scheduler's SIGTERM stops a real command process like Ctrl-C: rows saved, one line."""
    import signal
    import subprocess
    import sys
    import time

    out = str(tmp_path / "run")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen(
        [sys.executable, os.path.join(root, "bin", "discover.py"), "--out", out, "--methods",
         "pca-w", "--num_samples", "200000", "--k", "3", "--batch", "64", "--noprogress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not os.path.exists(os.path.join(out, resume.STATE_FILE)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    time.sleep(4.0)  # past compilation, into the sampling
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    lines = err.strip().splitlines()  # the stop request, then the one line of the exit
    assert len(lines) == 2 and "SIGTERM: stopping after the current step" in lines[0], err
    assert "terminated (SIGTERM)" in lines[1] and "rerun the same command to resume" in lines[1]
    saved = os.listdir(os.path.join(out, resume.PARTIAL_DIR, "fit_samples"))
    assert saved and all(f.startswith("rows_") for f in saved)
    assert resume.read_state(out)["status"] == "running"
