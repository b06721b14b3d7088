"""The command-line layer: every command's flags are derived from its run's config, the flag
vocabulary is the same everywhere, presets are shared, --help exits 0."""
import dataclasses
import json
import os

import pytest

from sparse_jax.cli import common, main
from sparse_jax.cli import convert as cli_convert
from sparse_jax.cli import discover as cli_discover
from sparse_jax.cli import evaluate as cli_evaluate
from sparse_jax.cli import generate as cli_generate
from sparse_jax.cli import render as cli_render
from sparse_jax.cli import run_paper as cli_run_paper
from sparse_jax.cli import train_classifier as cli_train_classifier
from sparse_jax.cli import train_stylegan as cli_train_stylegan
from sparse_jax.discovery import run as discover
from sparse_jax.evaluation import run as evaluate
from sparse_jax.generation import generate
from sparse_jax.io import model_dirs
from sparse_jax.pipeline import paper
from sparse_jax.training import classifier as train_classifier
from sparse_jax.training import train_gan

COMMAND_MODULES = sorted(main.COMMANDS.values())


def _parser_flags(parser):
    return {s for a in parser._actions for s in a.option_strings}


def _module(name):
    import importlib

    return importlib.import_module(f"sparse_jax.cli.{name}")


@pytest.mark.parametrize("name", COMMAND_MODULES)
def test_help_exits_zero(name, capsys):
    mod = _module(name)
    assert mod.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sparse-jax-") and "--" in out


def test_one_entry_point_dispatches(capsys):
    assert main.main(["generate", "--help"]) == 0
    assert "sparse-jax-generate" in capsys.readouterr().out
    assert main.main(["--help"]) == 0
    assert "run-paper" in capsys.readouterr().out
    assert main.main(["nonsense"]) == 2
    assert "unknown command 'nonsense'" in capsys.readouterr().err


def test_every_command_has_a_console_script():
    import tomllib

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    assert scripts["sparse-jax"] == "sparse_jax.cli.main:main"
    for command, module in main.COMMANDS.items():
        assert scripts[f"sparse-jax-{command}"] == f"sparse_jax.cli.{module}:main"
        assert os.path.isfile(os.path.join(root, "bin", f"{module}.py"))


# ----------------------------------------------------------------------------- flags == config


def _given_nothing(mod, *required):
    return mod.build_parser().parse_args(list(required))


def test_evaluate_flags_are_evalconfig_fields_with_its_defaults():
    ns = _given_nothing(cli_evaluate, "--directions", "a.npz", "--out", "x")
    fields = {f.name for f in dataclasses.fields(evaluate.EvalConfig)}
    assert set(ns._fields.values()) == fields  # every field is a flag, none restated
    sizes = paper.PaperSizes.quick()
    want = dataclasses.replace(
        evaluate.EvalConfig(), num_assign_seeds=sizes.num_assign_seeds,
        num_eval_seeds=sizes.num_eval_seeds, num_distances=sizes.num_distances,
        d_max_samples=sizes.d_max_samples, num_directions=sizes.k)
    assert cli_evaluate.config(ns) == want
    assert ns._fields["batch"] == "chunk"


def test_evaluate_preset_then_flags_override():
    ns = _given_nothing(cli_evaluate, "--directions", "a.npz,b.npz", "c.npz", "--out", "x",
                        "--preset", "paper", "--num_eval_seeds", "7", "--nofigures",
                        "--layer_range", "0,2", "--num_directions", "all", "--batch", "32",
                        "--truncation", "0.7")
    cfg = cli_evaluate.config(ns)
    big = paper.PaperSizes.paper()
    assert (cfg.num_assign_seeds, cfg.num_distances) == (big.num_assign_seeds, big.num_distances)
    assert cfg.num_eval_seeds == 7 and cfg.figures is False and cfg.layer_range == (0, 2)
    assert cfg.num_directions is None and cfg.chunk == 32 and cfg.truncation_psi == 0.7
    assert cli_evaluate.direction_paths(ns) == ["a.npz", "b.npz", "c.npz"]


def test_discover_flags_are_discoveryconfig_fields_and_run_discovery_arguments():
    import inspect

    sig = inspect.signature(discover.run_discovery).parameters
    for f in dataclasses.fields(discover.DiscoveryConfig):
        assert sig[f.name].default == f.default, f.name
    ns = _given_nothing(cli_discover, "--out", "x")
    assert set(ns._fields.values()) == {f.name for f in dataclasses.fields(
        discover.DiscoveryConfig)}
    quick = paper.PaperSizes.quick()
    assert cli_discover.config(ns) == dataclasses.replace(
        discover.DiscoveryConfig(), num_samples=quick.num_samples, k=quick.k)
    ns = _given_nothing(cli_discover, "--out", "x", "--preset", "smoke", "--k", "3",
                        "--truncation_psi", "0.5", "--methods", "sca")
    cfg = cli_discover.config(ns)
    assert (cfg.num_samples, cfg.k, cfg.truncation, cfg.methods) == (
        paper.PaperSizes.smoke().num_samples, 3, 0.5, "sca")


def test_run_paper_sizes_are_the_presets_and_arguments_its_defaults():
    import inspect

    ns = _given_nothing(cli_run_paper)
    kw = cli_run_paper.settings(ns)
    assert kw["sizes"] == paper.PaperSizes.quick() and kw["out"] == "results"
    for name, p in inspect.signature(paper.run_paper).parameters.items():
        if name not in ("out", "sizes", "progress", "log", "checkpoint"):
            assert kw[name] == p.default, name
    assert cli_run_paper.settings(_given_nothing(cli_run_paper, "--paper_scale"))["sizes"] == \
        paper.PaperSizes.paper()
    kw = cli_run_paper.settings(_given_nothing(cli_run_paper, "--preset", "smoke", "--k", "4"))
    assert kw["sizes"] == dataclasses.replace(paper.PaperSizes.smoke(), k=4)


def test_generate_and_render_defaults_are_the_library_functions():
    import inspect

    kw = cli_generate.settings(_given_nothing(cli_generate, "--out", "x.png"))
    for name, p in inspect.signature(generate.run).parameters.items():
        if p.default is not inspect.Parameter.empty:
            assert kw[name] == p.default, name
    kw = cli_render.settings(_given_nothing(cli_render, "--directions", "d.npz", "--out", "x.png"))
    for name, p in inspect.signature(evaluate.run_render).parameters.items():
        if p.default is not inspect.Parameter.empty and name not in ("devices", "sigmas"):
            assert kw[name] == p.default, name
    assert kw["sigmas"] == cli_render.DEFAULT_SIGMAS


def test_train_flags_are_the_shipped_recipe():
    ns = _given_nothing(cli_train_stylegan, "--data", "d", "--workdir", "w")
    gcfg, dcfg, tcfg = cli_train_stylegan.configs(ns)
    assert tcfg == train_gan.TrainConfig()
    # the named config is the shipped generator's architecture
    with open(os.path.join(model_dirs.default_generator_path(), "config.json")) as f:
        shipped = json.load(f)["config"]
    assert gcfg.to_dict() == shipped
    assert dcfg.img_channels == gcfg.img_channels * tcfg.pack
    # its recipe (assets/generator_mnist/README.md): PacGAN-4, R1 0.01, no mixing, lr 0.0025
    assert (tcfg.pack, tcfg.r1_gamma, tcfg.style_mixing_prob, tcfg.g_lr, tcfg.d_lr,
            tcfg.batch) == (4, 0.01, 0.0, 0.0025, 0.0025, 32)
    ns = _given_nothing(cli_train_stylegan, "--data", "d", "--workdir", "w", "--recipe",
                        "shipped_mnist")
    plan = cli_train_stylegan.stages(ns, tcfg)
    assert [os.path.basename(p[0]) for p in plan] == ["A", "T1", "T3", "T5"]
    assert [p[2] for p in plan] == [1198.4, 1542.4, 1766.4, 1942.4]
    assert [p[1].g_topk for p in plan] == [1.0, 0.5, 0.75, 0.75]
    assert plan[-1][1].ema_kimg == 100.0 and plan[1][3] == plan[0][0] and plan[0][3] is None
    ns = _given_nothing(cli_train_stylegan, "--data", "d", "--workdir", "w", "--pack", "2",
                        "--resolution", "16")
    gcfg, dcfg, tcfg = cli_train_stylegan.configs(ns)
    assert tcfg.pack == 2 and gcfg.img_resolution == dcfg.img_resolution == 16


def test_train_classifier_flags_are_its_trainconfig():
    kw = cli_train_classifier.settings(_given_nothing(cli_train_classifier, "--data", "d",
                                                      "--out", "o", "--batch", "12"))
    assert kw["tcfg"] == dataclasses.replace(train_classifier.TrainConfig(), batch_size=12)
    assert kw["widths"] == (16, 32, 64, 128)


# ----------------------------------------------------------------------------- one vocabulary

COMPUTING = ("generate", "render", "evaluate", "discover", "run_paper", "edit")


def _parsers():
    return {name: _module(name).build_parser() for name in COMMAND_MODULES}


def test_one_flag_vocabulary():
    parsers = _parsers()
    for name, parser in parsers.items():
        flags = _parser_flags(parser)
        for old in ("--chunk", "--batch_size", "--truncation_cutoff_slots"):
            assert old not in flags, (name, old)
        if name in COMPUTING:
            assert {"--multihost", "--batch", "--verbose"} <= flags, name
        if name in ("generate", "render", "evaluate", "discover", "edit"):
            assert {"--truncation_psi", "--truncation"} <= flags, name
        if name in ("discover", "evaluate", "run_paper"):
            assert "--preset" in flags, name
    # --seeds is one seed list syntax wherever it is accepted
    for name in ("generate", "render", "edit"):
        assert "--seeds" in _parser_flags(parsers[name]), name
    ns = parsers["render"].parse_args(["--seeds", "0-2,5", "--directions", "d", "--out", "x.png"])
    assert ns.seeds == [0, 1, 2, 5]


def test_truncation_default_reads_the_generator_directory(tmp_path):
    gen = tmp_path / "g"
    gen.mkdir()
    (gen / "config.json").write_text(json.dumps({
        "format": "sparse-jax-generator", "version": 1, "architecture": "stylegan1",
        "config": {}, "defaults": {"truncation_psi": 0.7, "truncation_cutoff": 8}}))
    assert common.resolve_truncation("default", None, str(gen), False) == (0.7, 8)
    assert common.resolve_truncation("default", 4, str(gen), True) == (0.7, 4)
    assert common.resolve_truncation(0.5, None, str(gen)) == (0.5, None)
    assert common.resolve_truncation("default", None, None) == (1.0, None)  # embedded: none
    with pytest.raises(common.UserError, match="first 8 ws slots"):
        common.psi_without_cutoff("default", str(gen), "evaluate")


def test_convert_flags_are_convert_arguments():
    ns = _given_nothing(cli_convert, "--src", "a.pkl", "--out", "o", "--seed", "3")
    assert common.values_of(ns, ns._run) == {"w_avg_seed": 3}


def test_direction_files_may_be_npz_or_sefa_style_npy(tmp_path):
    import numpy as np

    npy = str(tmp_path / "sefa.npy")
    np.save(npy, np.eye(3, 64, dtype=np.float32))
    assert common.check_direction_file(npy, "--directions") == npy
    npz = str(tmp_path / "d.npz")
    np.savez(npz, lat_comp=np.eye(3, 64))
    assert common.check_direction_file(npz, "--directions") == npz
    fake = tmp_path / "text.npy"
    fake.write_text("not an array")
    with pytest.raises(common.UserError, match=r"--directions .*text\.npy: not a NumPy"):
        common.check_direction_file(str(fake), "--directions")
    # The render command itself gets past the file check with a .npy and renders it.
    out = str(tmp_path / "grid.png")
    assert cli_render.main(["--directions", npy, "--out", out, "--seeds", "0-1",
                            "--distances", "-1,0,1"]) == 0
    assert os.path.getsize(out) > 0
