"""bench/gpu.sh: the prepared GPU benchmark runs end to end at its --smoke size on CPU and prints
markdown rows (device named) for docs/benchmarks.md; without a GPU the full size refuses."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "bench", "gpu.sh")


def _run(*args, timeout=600):
    env = dict(os.environ, PYTHON=sys.executable, JAX_PLATFORMS="cpu")
    return subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.mark.slow  # ~50 s of CPU: four generator compiles, SCA, a tiny main job
def test_smoke_prints_every_row_with_the_device(tmp_path):
    out = tmp_path / "rows.md"
    proc = _run("--smoke", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    assert out.read_text() == text
    assert re.search(r"device: \d+ x .*\(cpu\)", text) and "commit " in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0] == "| stage | shape | compute | batch | result |"
    stages = [r.split("|")[1].strip() for r in rows[1:]]
    assert stages == ["generator", "generator", "features", "PCA", "SCA", "main job"]
    assert all(len(r.split("|")) == 7 for r in rows)
    rates = [float(m) for m in re.findall(r"\| ([\d.]+) img/s", text)]
    assert len(rates) == 2 and all(r > 0 for r in rates)
    assert "NON-FINITE" not in text
    assert "sparsity 0.8" in text  # SCA hit its 80% target


def test_refuses_without_gpu_and_bad_flags():
    proc = _run()
    assert proc.returncode == 1 and "no GPU" in proc.stderr
    proc = _run("--smoke", "--skip", "walks")
    assert proc.returncode != 0 and "--skip takes gen, sca, paper" in proc.stderr
