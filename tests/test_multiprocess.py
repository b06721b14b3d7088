"""Two processes on 127.0.0.1 (jax.distributed, CPU gloo collectives, 2 host devices each) run a
small discovery and evaluation through the library and get the directions and the Table 1 of one
process with 4 devices; only process 0 writes the discovery outputs."""
import json
import os
import socket
import subprocess
import sys

import conftest  # noqa: F401  (4 CPU devices before JAX starts)
import jax
import multiprocess_worker as worker
import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(out: str) -> list[dict]:
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    port = str(_free_port())
    # Process 0 gets the coordinator as arguments, process 1 through the environment variables
    # that `--multihost` relies on.
    by_env = dict(env, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
                  JAX_PROCESS_ID="1")
    cmd = [sys.executable, os.path.join(HERE, "multiprocess_worker.py"), out]
    procs = [subprocess.Popen(cmd + ["0", "2", port], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True),
             subprocess.Popen(cmd + ["1", "2", "0"], env=by_env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=420)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for i, p in enumerate(procs):
        assert p.returncode == 0, f"process {i} failed:\n{logs[i][-4000:]}"
    results = []
    for i in range(2):
        with open(os.path.join(out, f"result_{i}.json")) as f:
            results.append(json.load(f))
    return results


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
    assert jax.device_count() == 4 and jax.process_count() == 1
    multi = _two_processes(str(tmp_path / "multi"))
    os.makedirs(tmp_path / "single")
    single = worker.run(str(tmp_path / "single"))

    for i, r in enumerate(multi):
        assert (r["process_index"], r["process_count"], r["device_count"]) == (i, 2, 4)
        # The decompositions ran on features row-sharded over both processes' devices.
        assert r["decomposition_input"] == {"spec": ["data"], "devices": 4,
                                            "fully_addressable": False}
    # An unfinished run reopened on both processes resumes from the parts process 0 wrote.
    for r in multi:
        assert r["resumed"] == {"first_resumed": False, "again_resumed": True,
                                "resumed_methods": ["pca", "sca"], "max_difference": 0.0}
    # Only process 0 wrote the discovery outputs.
    assert multi[0]["main"] and not multi[1]["main"]
    assert os.path.isfile(tmp_path / "multi" / "p0" / "directions" / "directions_sca.npz")
    assert not os.path.exists(tmp_path / "multi" / "p1")
    # Table 1, figures and every other output go through core.atomic: process 0 only.
    assert os.listdir(tmp_path / "multi" / "shared") == ["from_p0.txt"]

    for r in multi:
        for method, ref in single["directions"].items():
            got, ref = np.asarray(r["directions"][method]), np.asarray(ref)
            # Reductions run in another order over the processes' devices.
            assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max(), method
        assert r["markdown"] == single["markdown"]
        for method, ref in single["table1"].items():
            for key in ("S_e", "S_d"):
                assert r["table1"][method][key] == pytest.approx(ref[key], rel=1e-5, abs=1e-6)
