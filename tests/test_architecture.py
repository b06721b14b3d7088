"""The import map of docs/architecture.md: each stage imports only the folders it may."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "sparse_jax")

ALLOWED = {
    "core": set(),
    "data": {"core"},
    "models": {"core"},
    "io": {"core", "models"},
    "decompose": {"core"},
    "plots": {"core"},
    "discovery": {"core", "models", "io", "decompose", "plots"},
    "evaluation": {"core", "models", "io", "plots"},
    "generation": {"core", "models", "io"},
    "training": {"core", "data", "models", "io"},
    "pipeline": {"core", "models", "io", "decompose", "plots", "discovery", "evaluation",
                 "generation"},
    # the explorer's engine and its Gradio page (no flags)
    "explorer": {"core", "models", "io", "generation"},
    # the command-line layer: the only place that reads flags; may import every stage
    "cli": {"core", "data", "models", "io", "decompose", "plots", "discovery", "evaluation",
            "generation", "training", "pipeline", "explorer"},
}
# Stages that may import the checkpoint converters (`sparse-jax-convert` calls them).
MAY_IMPORT_CONVERTERS = {"cli"}
CONVERTERS_ALLOWED = {"core", "models", "io"}


def _imports(path: str) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in a file, including those inside functions."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            if node.module == "sparse_jax":  # `from sparse_jax import discovery`
                out += [(node.lineno, f"sparse_jax.{a.name}") for a in node.names]
    return out


def _py_files(folder: str):
    for dirpath, _, files in os.walk(folder):
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(dirpath, name)


def _stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "sparse_jax" and len(parts) > 1 else None


def test_every_stage_folder_is_in_the_map():
    folders = {d for d in os.listdir(PKG) if os.path.isfile(os.path.join(PKG, d, "__init__.py"))}
    assert folders == set(ALLOWED), "update docs/architecture.md and ALLOWED together"
    loose = sorted(f for f in os.listdir(PKG) if f.endswith(".py") and f != "__init__.py")
    assert not loose, f"modules outside the stage folders: {loose}"


@pytest.mark.parametrize("stage", sorted(ALLOWED))
def test_stage_imports_follow_the_map(stage):
    bad = []
    for path in _py_files(os.path.join(PKG, stage)):
        for line, module in _imports(path):
            if module.split(".")[0] == "converters" and stage not in MAY_IMPORT_CONVERTERS:
                bad.append(f"{os.path.relpath(path, ROOT)}:{line} imports {module}")
            target = _stage_of(module)
            if target and target != stage and target not in ALLOWED[stage]:
                bad.append(f"{os.path.relpath(path, ROOT)}:{line} imports {module}")
    assert not bad, "imports against docs/architecture.md:\n" + "\n".join(bad)


def test_converters_import_only_core_models_io():
    bad = [f"{os.path.relpath(p, ROOT)}:{line} imports {m}"
           for p in _py_files(os.path.join(ROOT, "converters")) for line, m in _imports(p)
           if _stage_of(m) and _stage_of(m) not in CONVERTERS_ALLOWED]
    assert not bad, "\n".join(bad)


def test_the_checker_sees_a_forbidden_import(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from sparse_jax.evaluation import walks\n")
    assert _stage_of(_imports(str(f))[0][1]) == "evaluation"
    assert "evaluation" not in ALLOWED["discovery"]
