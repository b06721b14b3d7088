"""The converter fuzz harness (bench/fuzz_converter.py) on a few hundred seeded mutants."""
import os
import sys

from conftest import ROOT, SHARED

sys.path.insert(0, os.path.join(ROOT, "bench"))
import fuzz_converter  # noqa: E402


def test_seeded_mutants_are_converted_or_refused_and_run_no_code():
    result = fuzz_converter.run(300, seed=0, shared=SHARED)
    total = result["total"]
    assert total.tried == 300
    assert total.uncaught == 0, "\n".join(result["uncaught_examples"])
    assert total.executed == 0
    assert total.refused + total.converted == 300
    assert total.refused > 100 and total.converted > 0  # both outcomes are exercised
    assert len(result["by_target"]) >= 5  # 3 TF fixtures, the PyTorch snapshot, rosinality
    # The marker-creating mutations ran, and the source-carrying files still converted.
    assert result["by_mutator"]["inject_payload"].refused == \
        result["by_mutator"]["inject_payload"].tried > 0
    src = result["by_mutator"]["embedded_source"]
    assert src.tried > 0 and src.converted > 0
    table = fuzz_converter.markdown(result)
    assert "| **total** | **300** |" in table


def test_mutators_change_the_file_and_keep_it_parseable_where_meant():
    import pickletools

    import numpy as np

    targets = {t.name: t for t in fuzz_converter.load_targets(SHARED)}
    t = targets["tf:sg2_r32_rgb"]
    assert len(t.globals_) == 5 and t.dtype_ops and t.shape_ops and t.src_ops
    m = fuzz_converter.Mutators("/nonexistent/marker")
    rng = np.random.default_rng(0)
    for name, fn in m.all().items():
        out = fn(rng, t)
        assert out is None or out != t.data, name
    # Frame stripping keeps the pickle equivalent.
    with open(os.path.join(SHARED, "reference", "stylegan-tf", "sg2_r32_rgb_nosrc.pkl"),
              "rb") as f:
        raw = f.read()
    assert b"\x95" in raw[:3]  # FRAME right after PROTO
    list(pickletools.genops(t.data))
    assert len(t.data) < len(raw)
