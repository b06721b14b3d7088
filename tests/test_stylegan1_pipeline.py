"""The paper's own model type end to end: a converted StyleGAN v1 TF pickle through run-paper."""
import json
import os

import pytest

from sparse_jax.cli import convert as cli_convert
from sparse_jax.cli import run_paper as cli_run_paper

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                      "shared", "reference", "stylegan-tf")


@pytest.mark.slow
def test_run_paper_smoke_on_a_converted_stylegan1(tmp_path, capsys):
    gen = str(tmp_path / "sg1")
    assert cli_convert.main(["--src", os.path.join(SHARED, "sg1_r32_rgb_nosrc.pkl"),
                             "--out", gen]) == 0
    with open(os.path.join(gen, "config.json")) as f:
        meta = json.load(f)
    assert meta["architecture"] == "stylegan1"
    assert meta["defaults"] == {"truncation_psi": 0.7, "truncation_cutoff": 8}

    # The shipped classifier reads 32x32 grey digits: RGB images are refused without the flag,
    # with one line naming both directories.
    out = str(tmp_path / "refused")
    assert cli_run_paper.main(["--generator", gen, "--preset", "smoke", "--out", out]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and gen in err[0] and "classifier" in err[0], err

    out = str(tmp_path / "paper")
    assert cli_run_paper.main(["--generator", gen, "--preset", "smoke", "--out", out,
                               "--allow_classifier_mismatch"]) == 0
    with open(os.path.join(out, "table1.json")) as f:
        table = json.load(f)
    assert set(table["methods"]) == {"pca-w", "pca", "sefa", "sca", "sca-w"}
    sefa = json.load(open(os.path.join(out, "directions", "summary.json")))
    assert "sefa" in json.dumps(sefa)
    names = set(os.listdir(out))
    assert "table1.md" in names and any(n.startswith("fig3_walks_") for n in names)
