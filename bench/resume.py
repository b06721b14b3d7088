"""Benchmark of resuming: a command interrupted (SIGINT, as Ctrl-C) part way, then rerun.

For each repeat, on the embedded MNIST models: the command runs uninterrupted into a new folder
(T_full); the same command runs into another folder and gets SIGINT after `--at` x the median
T_full so far; the rerun resumes it (T_resume). It prints the medians, T_resume / T_full, the
work lost to the interruption ((T_at + T_resume) / T_full - 1, startup included) and the largest
difference between the resumed and the uninterrupted outputs (directions for discover, Table 1
for evaluate).

    nice -n 10 python bench/resume.py --command discover --preset quick --repeats 3
    nice -n 10 python bench/resume.py --command evaluate --preset quick --repeats 3
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _command(name: str, out: str, preset: str, directions: list[str]) -> list[str]:
    argv = [sys.executable, os.path.join(ROOT, "bin", f"{name}.py"), "--out", out, "--preset",
            preset, "--noprogress"]
    if name == "evaluate":
        argv += ["--directions", *directions]
    return argv


def _timed(argv: list[str], interrupt_after: float | None = None) -> tuple[float, int]:
    t0 = time.perf_counter()
    # A background shell starts its jobs with SIGINT ignored; the command must see it as a
    # terminal's Ctrl-C would.
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    if interrupt_after is not None:
        try:
            proc.wait(timeout=interrupt_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
    _, err = proc.communicate()
    rc = proc.returncode
    if rc not in (0, 130):
        raise SystemExit(f"{' '.join(argv)} failed ({rc}): {err.strip()[-500:]}")
    return time.perf_counter() - t0, rc


def _difference(command: str, a: str, b: str) -> float:
    import numpy as np

    if command == "discover":
        return max(float(np.abs(np.load(f)["lat_comp"]
                                - np.load(os.path.join(b, os.path.basename(f)))["lat_comp"]).max())
                   for f in glob.glob(os.path.join(a, "directions_*.npz")))
    ta = json.load(open(os.path.join(a, "table1.json")))["methods"]
    tb = json.load(open(os.path.join(b, "table1.json")))["methods"]
    return max(abs(ta[m][k] - tb[m][k]) for m in ta for k in ("S_e", "S_d", "efficiency")
               if ta[m][k] is not None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--command", choices=("discover", "evaluate", "run_paper"), default="discover")
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--at", type=float, default=0.5, help="SIGINT after this share of T_full")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", default="pca,sca",
                    help="evaluate: the direction files discovered first (quick preset)")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bench_resume_")
    directions: list[str] = []
    if args.command == "evaluate":
        d = os.path.join(work, "dirs")
        subprocess.run([sys.executable, os.path.join(ROOT, "bin", "discover.py"), "--out", d,
                        "--methods", args.methods, "--noprogress"], check=True,
                       stdout=subprocess.DEVNULL)
        directions = [os.path.join(d, f"directions_{m}.npz") for m in args.methods.split(",")]
    full, at, resumed, lost, diffs = [], [], [], [], []
    try:
        for r in range(args.repeats):
            ref, out = os.path.join(work, f"full_{r}"), os.path.join(work, f"cut_{r}")
            t_full, _ = _timed(_command(args.command, ref, args.preset, directions))
            full.append(t_full)
            t_at, rc = _timed(_command(args.command, out, args.preset, directions),
                              interrupt_after=args.at * statistics.median(full))
            if rc != 130:
                raise SystemExit(f"repeat {r}: the run finished before SIGINT; lower --at")
            t_res, rc = _timed(_command(args.command, out, args.preset, directions))
            at.append(t_at)
            resumed.append(t_res)
            lost.append((t_at + t_res) / t_full - 1.0)
            diffs.append(_difference(args.command, ref, out))
            print(f"repeat {r}: full {t_full:.1f} s, interrupted at {t_at:.1f} s, resume "
                  f"{t_res:.1f} s, max |difference| {diffs[-1]:.2g}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = statistics.median
    print(json.dumps({
        "command": args.command, "preset": args.preset, "at": args.at, "repeats": args.repeats,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_1min_at_end": os.getloadavg()[0],
        "median_full_s": round(med(full), 1), "median_interrupted_at_s": round(med(at), 1),
        "median_resume_s": round(med(resumed), 1),
        "median_resume_over_full": round(med(r / f for r, f in zip(resumed, full, strict=True)), 3),
        "median_work_lost": round(med(lost), 3), "max_difference": max(diffs),
    }, indent=1))


if __name__ == "__main__":
    main()
