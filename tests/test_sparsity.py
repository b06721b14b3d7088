"""The sparsity sweep: the smooth surrogate efficiency is differentiable end to end (SCA ->
regression to W -> walk -> G -> classifier), its jax.grad matches central differences, it traces
once, and the command's smoke preset writes its outputs."""
import functools
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparse_jax import decompose
from sparse_jax.cli import sparsity_sweep as cli
from sparse_jax.core import seeds
from sparse_jax.discovery import features
from sparse_jax.evaluation import efficiency
from sparse_jax.io import model_dirs
from sparse_jax.models import classifier as clf
from sparse_jax.models import stylegan2 as sg
from sparse_jax.pipeline import sparsity
from sparse_jax.plots import figures as plots

CFG = sg.GeneratorConfig(z_dim=8, w_dim=8, img_resolution=8, img_channels=1, mapping_layers=2,
                         channel_base=64, channel_max=8)
CLS = clf.ClassifierConfig(heads=(clf.Head("sigmoid", ("a", "b", "c")),), resolution=8,
                           widths=(4, 8))
K = 3


@functools.lru_cache(maxsize=1)
def _setup():
    """Random-init 8x8 generator and classifier, pooled features (p = 8) and the walk seeds."""
    gen = sg.init_generator(jax.random.key(0), CFG)
    params = clf.init_classifier(jax.random.key(1), CLS)
    fit = features.sample_features(CFG, gen, seeds.stream_key(0, seeds.FIT_STREAM), 200,
                                   progress=False)
    reg = features.sample_features(CFG, gen, seeds.stream_key(0, seeds.REGRESSION_STREAM), 200,
                                   progress=False)
    args = (jnp.asarray(fit.x), jnp.asarray(reg.x), jnp.asarray(reg.w), gen, params,
            seeds.stream_key(0, seeds.IMAGE_STREAM), jnp.arange(3), jnp.arange(3, 7))
    return gen, params, args


def _spec():
    # Random weights move p by a few hundredths only, so the target shift is small here; the
    # temperatures match it (the sigmoid and softmax are not saturated).
    grid, d_idx = sparsity.surrogate_grid(2.0, num=3)
    return sparsity.SurrogateSpec(gen_cfg=CFG, cls_cfg=CLS, k=K, distances=grid,
                                  d_max_index=d_idx, n_sweeps=4, varimax_steps=5, chunk=32,
                                  shift=0.02, tau_reach=0.02, tau_assign=0.01)


def _gamma(sparsity_target):
    return decompose.gamma_for_sparsity(_setup()[2][0], K, sparsity_target, rotate_z=False)


def test_surrogate_is_differentiable_and_matches_central_differences():
    args = _setup()[2]
    spec = _spec()
    gamma = _gamma(0.6)
    value, grad = sparsity.efficiency_and_grad(jnp.float32(gamma), *args, spec=spec)
    assert np.isfinite(float(value)) and float(value) > 0
    assert np.isfinite(float(grad)) and abs(float(grad)) > 1e-6  # gamma reaches the output
    check = sparsity.gradient_check(gamma, args, spec, fd_step=0.01)
    assert check["crossings"] == 0, check  # a smooth piece: no loading enters or leaves
    assert check["relative_difference"] < 0.05, check
    assert check["agree"] and np.isclose(check["grad"], float(grad), rtol=1e-6)
    out = sparsity.surrogate_jit(jnp.float32(gamma), *args, spec=spec)
    np.testing.assert_allclose(float(out.efficiency), float(value), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(out.weights).sum(0), 1.0, rtol=1e-5)
    assert 0.4 < float(np.mean(np.asarray(out.loadings) == 0)) < 0.8
    # The directions are discovery's: unit rows in W.
    np.testing.assert_allclose(np.linalg.norm(np.asarray(out.lat_comp), axis=1), 1.0, rtol=1e-5)


def test_surrogate_traces_once_across_gammas():
    args = _setup()[2]
    spec = _spec()
    chex.clear_trace_counter()
    fn = jax.jit(chex.assert_max_traces(sparsity.surrogate, n=1), static_argnames=("spec",))
    a = fn(jnp.float32(_gamma(0.3)), *args, spec=spec).efficiency
    b = fn(jnp.float32(_gamma(0.6)), *args, spec=spec).efficiency
    assert np.isfinite(float(a)) and np.isfinite(float(b)) and float(a) != float(b)


def test_soft_efficiency_tends_to_the_hard_first_crossing():
    t = np.array([0.0, 0.5, 1.0, 2.0, 4.0])
    gains = np.array([[0.1, 0.3, 0.7, 0.9],      # crosses 0.5 in (1, 2]
                      [0.0, 0.1, 0.2, 0.3],      # never: efficiency 0
                      [0.6, 0.8, 0.9, 0.9]])     # in (0, 0.5]
    soft = np.asarray(sparsity.soft_efficiency(jnp.asarray(gains), jnp.asarray(t), 0.5, 1e-3))
    np.testing.assert_allclose(soft, [0.5 / 1.5, 0.0, 0.5 / 0.25], rtol=1e-4)
    # The hard metric's interpolated crossing lies in the same grid interval.
    curves = np.concatenate([np.zeros((3, 1)), gains], axis=1)
    hard = efficiency.reach_distances(curves, t, 0.5)
    assert 1.0 < hard[0] <= 2.0 and np.isinf(hard[1]) and 0.0 < hard[2] <= 0.5
    # Warmer temperatures stay finite and between the extremes.
    warm = np.asarray(sparsity.soft_efficiency(jnp.asarray(gains), jnp.asarray(t), 0.5, 0.1))
    assert np.all(np.isfinite(warm)) and warm[1] < warm[0] < warm[2]


def test_surrogate_grid_holds_d_max():
    grid, i = sparsity.surrogate_grid(5.76)
    assert grid[0] == 0.0 and grid[i] == 5.76 and np.all(np.diff(grid) > 0)
    np.testing.assert_allclose(grid[-1], 4 * 5.76)


def test_sparsity_figure_is_readable():
    x = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95])
    tri = np.stack([x, x - 0.1, x + 0.1], axis=1)
    tri[2] = np.nan  # a missing point is skipped
    fig = plots.sparsity_figure(x, {"efficiency": tri, "surrogate": tri * 0.5}, tri,
                                title="a title")
    assert fig.get_figwidth() <= plots.MAX_WIDTH_IN
    sizes = plots.text_sizes_px(fig)
    assert sizes and min(h for _, h in sizes) >= plots.MIN_FONT_PT * plots.DPI / 72.0 - 1e-6


@pytest.mark.slow  # the whole command end to end (about a minute on 2 shared cores)
def test_smoke_preset_writes_outputs_resumes_and_refuses_another_run(tmp_path, capsys,
                                                                       monkeypatch):
    gen, params, _ = _setup()
    g_dir, c_dir = str(tmp_path / "g"), str(tmp_path / "c")
    model_dirs.save_generator(g_dir, CFG, gen)
    model_dirs.save_classifier(c_dir, CLS, params)
    out = str(tmp_path / "out")
    argv = ["--out", out, "--preset", "smoke", "--generator", g_dir, "--classifier", c_dir,
            "--noprogress", "--sparsities", "0,0.6", "--grad_sparsities", "0.6"]
    assert cli.main(argv) == 0
    assert sorted(os.listdir(out)) == ["run_state.json", "sparsity_sweep.png", "sweep.json",
                                       "sweep.md"]
    with open(os.path.join(out, "sweep.json")) as f:
        result = json.load(f)
    assert [round(p["target_sparsity"], 2) for p in result["points"]] == [0.0, 0.6]
    assert result["points"][0]["zero_fraction"] == 0.0
    assert result["points"][1]["zero_fraction"] > 0.3
    for p in result["points"]:
        assert set(p["S_d"]) == {"value", "low", "high"}
    check = result["gradient_check"][0]
    assert np.isfinite(check["grad"]) and np.isfinite(check["finite_difference"])
    assert "## Gradient check" in open(os.path.join(out, "sweep.md")).read()
    capsys.readouterr()
    assert cli.main(argv) == 0  # the same finished run: nothing to do
    assert "nothing to do" in capsys.readouterr().out
    assert cli.main([*argv, "--k", "2"]) == 1  # a folder holding another run needs --overwrite
    err = capsys.readouterr().err
    assert "--out" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1

    # Interrupted in its second sweep point, the sweep resumes to the same result.
    orig = sparsity.surrogate_jit
    calls = {"n": 0}

    def interrupted(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return orig(*a, **k)

    cut = str(tmp_path / "cut")
    argv_cut = [*argv[:1], cut, *argv[2:]]
    monkeypatch.setattr(sparsity, "surrogate_jit", interrupted)
    assert cli.main(argv_cut) == 130
    monkeypatch.setattr(sparsity, "surrogate_jit", orig)
    assert cli.main(argv_cut) == 0
    assert "resuming the unfinished sparsity_sweep run" in capsys.readouterr().out
    resumed = json.load(open(os.path.join(cut, "sweep.json")))
    for a, b in zip(result["points"], resumed["points"], strict=True):
        assert b["zero_fraction"] == a["zero_fraction"]
        assert b["surrogate"]["value"] == pytest.approx(a["surrogate"]["value"], rel=1e-5)
        for key in ("efficiency", "S_d"):
            if a[key]["value"] is None:
                assert b[key]["value"] is None
            else:
                assert b[key]["value"] == pytest.approx(a[key]["value"], rel=1e-5)
    assert resumed["gradient_check"][0]["grad"] == pytest.approx(check["grad"], rel=1e-4)


def test_bad_flag_is_one_line(capsys, tmp_path):
    assert cli.main(["--out", str(tmp_path / "o"), "--preset", "smoke",
                     "--sparsities", "0,1.5"]) == 1
    err = capsys.readouterr().err.strip()
    assert "sparsities" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("preset", list(sparsity.PRESETS))
def test_presets_are_valid_configs(preset):
    c = sparsity.PRESETS[preset]()
    assert min(c.sparsities) == 0.0 and max(c.sparsities) >= 0.9


def test_flags_are_sweepconfig_fields_and_presets_then_flags_apply():
    import dataclasses

    parser = cli.build_parser()
    flags = {s for a in parser._actions for s in a.option_strings}
    for f in dataclasses.fields(sparsity.SweepConfig):
        assert f"--{f.name}" in flags, f.name
    ns = parser.parse_args(["--out", "x"])
    assert cli.config(ns) == sparsity.SweepConfig()
    ns = parser.parse_args(["--out", "x", "--preset", "smoke", "--k", "4",
                            "--sparsities", "0,0.5"])
    assert cli.config(ns) == dataclasses.replace(sparsity.SweepConfig.smoke(), k=4,
                                                 sparsities=(0.0, 0.5))
