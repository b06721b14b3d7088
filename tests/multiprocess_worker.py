"""One process of tests/test_multiprocess.py: a small discovery and evaluation through the library.

    python tests/multiprocess_worker.py OUT PROCESS_ID NUM_PROCESSES PORT

With NUM_PROCESSES > 1 it joins a `jax.distributed` run on 127.0.0.1:PORT (CPU, gloo
collectives) before any JAX computation; PORT 0 takes the coordinator, the process count and id
from the environment (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID). Every process
runs the same code; discovery writes OUT/p<id>/directions only on process 0, and each process
dumps what it computed (directions, Table 1) to OUT/result_<id>.json for the test to compare.
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Sizes: every count divides 4 devices (2 processes x 2), so the features are row-sharded.
NUM_SAMPLES = 64
NUM_REGRESSION = 48
K = 3
METHODS = "pca-w,pca,sefa,sca,sca-w"


def run(out: str) -> dict:
    """Discovery + Table 1 on a tiny random generator; returns what this process computed."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from sparse_jax.core import sharding
    from sparse_jax.discovery import run as discover
    from sparse_jax.evaluation import metrics
    from sparse_jax.evaluation import run as evaluate
    from sparse_jax.io import direction_files
    from sparse_jax.models import stylegan2 as sg

    cfg = sg.GeneratorConfig(z_dim=8, w_dim=8, img_resolution=8, img_channels=1,
                             mapping_layers=2, channel_base=64, channel_max=8)
    variables = sg.init_generator(jax.random.key(0), cfg)
    pid = jax.process_index()
    dir_out = os.path.join(out, f"p{pid}", "directions")
    result = discover.run_discovery(
        cfg, variables, methods=METHODS, layers="b4.conv1,b8.conv1", num_samples=NUM_SAMPLES,
        num_regression_samples=NUM_REGRESSION, k=K, batch=16, out=dir_out, progress=False)

    def predict(images):
        top = images[:, :, : images.shape[2] // 2].mean(axis=(1, 2, 3))
        bottom = images[:, :, images.shape[2] // 2:].mean(axis=(1, 2, 3))
        return jax.nn.sigmoid(jnp.stack([8.0 * (top + bottom), 8.0 * (top - bottom)], axis=1))

    # Every process reads the files process 0 wrote (run_discovery waits until they exist).
    main_dir = os.path.join(out, "p0", "directions")
    sets = [direction_files.read_directions(os.path.join(main_dir, f"directions_{m}.npz"),
                                            cfg.w_dim, K) for m in result.methods]
    config = evaluate.EvalConfig(num_assign_seeds=8, num_eval_seeds=16, num_distances=3,
                                 d_max=2.0, chunk=16, reach_points=4, figures=False)
    table, _ = evaluate.evaluate_directions(cfg, variables, predict, ["bright", "top_heavy"],
                                            sets, config)
    # Every output file goes through core.atomic, which writes on process 0 only.
    from sparse_jax.core import atomic

    atomic.write_text(os.path.join(out, "shared", f"from_p{pid}.txt"), "written\n")
    sharding.sync("probe written")
    resumed = _resumed_discovery(cfg, variables, os.path.join(out, "resumable"))
    return {
        "resumed": resumed,
        "process_index": pid, "process_count": jax.process_count(),
        "device_count": jax.device_count(),
        "directions": {m: np.asarray(r.dirs.lat_comp).tolist()
                       for m, r in result.methods.items()},
        "table1": table["methods"], "markdown": metrics.table1_markdown(table),
        "wrote": os.path.isdir(dir_out),
        # How the decompositions saw the features: row-sharded over every device of every
        # process (not fully addressable from one process when there are several).
        "decomposition_input": _describe(discover._on_mesh(result.fit.x, None)),
        "main": sharding.is_main_process(),
    }


def _resumed_discovery(cfg, variables, folder: str) -> dict:
    """A discovery run that stops before it is marked finished, opened again and resumed: every
    process must find it resumable, read the same parts, and get the same directions."""
    import numpy as np

    from sparse_jax.core import resume
    from sparse_jax.discovery import run as discover

    kw = dict(methods="pca,sca", layers="b8.conv1", num_samples=NUM_SAMPLES,
              num_regression_samples=NUM_REGRESSION, k=K, batch=16, out=folder, progress=False)
    first = resume.open_run_folder(folder, "discover", {"case": "multiprocess"}, ("*",))
    a = discover.run_discovery(cfg, variables, checkpoint=first, **kw)
    again = resume.open_run_folder(folder, "discover", {"case": "multiprocess"}, ("*",))
    b = discover.run_discovery(cfg, variables, checkpoint=again, **kw)
    return {"first_resumed": first.resumed, "again_resumed": again.resumed,
            "resumed_methods": b.summary["resumed_methods"],
            "max_difference": max(float(np.abs(a.methods[m].dirs.lat_comp
                                               - b.methods[m].dirs.lat_comp).max())
                                  for m in a.methods)}


def _describe(x) -> dict:
    return {"spec": list(getattr(x.sharding, "spec", ())), "devices": len(x.sharding.device_set),
            "fully_addressable": bool(x.is_fully_addressable)}


def main() -> None:
    out, pid, nproc, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    from sparse_jax.core import sharding

    if port:
        sharding.initialize_distributed(nproc > 1, coordinator_address=f"127.0.0.1:{port}",
                                        num_processes=nproc, process_id=pid)
    else:  # PORT 0: from JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID
        sharding.initialize_distributed(nproc > 1)
    res = run(out)
    with open(os.path.join(out, f"result_{pid}.json"), "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    main()
