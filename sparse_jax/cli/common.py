"""What every command shares: flags derived from config dataclasses, one flag vocabulary, presets,
one-line errors, output checks before any expensive work, quiet logs and progress on terminals.

Flags are never restated: `add_fields` turns the fields of a run's config dataclass (or the
keyword arguments of a library function) into argparse options whose defaults *are* the
dataclass's defaults; `values_of` reads back only the flags the user gave, so
`dataclasses.replace(preset_config, **values_of(...))` is the run's config.

Vocabulary (the same name means the same thing in every command):
  --generator, --classifier   model directories (default: the embedded MNIST models)
  --out, --overwrite          the output path; a used output folder needs --overwrite, except
                              that discover, evaluate, run_paper and sparsity_sweep resume their
                              own unfinished run (same settings) from its finished parts
  --seeds                     generator seeds ('0-7,9'): z = normal(key(seed)), as in generate
  --seed                      the PRNG seed of a run (walk seeds, samples)
  --batch                     items per compiled call (memory scales with it)
  --truncation_psi (--truncation), --truncation_cutoff
                              psi, or 'default' for the generator directory's own defaults
  --preset quick|paper|smoke  run sizes shared by discover, evaluate and run_paper
  --multihost                 jax.distributed.initialize() first (multi-process runs)
  --progress / --noprogress   progress bars (default: on when stderr is a terminal)
  --verbose                   library INFO logs (off by default)
"""
from __future__ import annotations

import argparse
import collections.abc
import contextlib
import dataclasses
import inspect
import math
import os
import re
import sys
import tempfile
import types
import typing
from typing import Any, Callable, Iterable, Mapping, Sequence

DEBUG_ENV = "SPARSE_JAX_DEBUG"  # set to 1 for full tracebacks instead of one-line errors
PRESET_NAMES = ("quick", "paper", "smoke")
DEFAULT_PRESET = "quick"
_NONE_WORDS = ("none", "auto", "all")


class UserError(ValueError):
    """A mistake in the command line or its input files; printed as one line, no traceback."""


# ----------------------------------------------------------------------------- parameters


@dataclasses.dataclass(frozen=True)
class Param:
    """One configurable value: a dataclass field or a keyword argument of a function."""

    name: str
    type: Any
    default: Any


def params_of(obj: Any) -> list[Param]:
    """The fields of a dataclass (class or instance: its values are the defaults) or the
    keyword arguments (with defaults) of a function."""
    if dataclasses.is_dataclass(obj):
        cls = obj if isinstance(obj, type) else type(obj)
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            if isinstance(obj, type):
                default = f.default if f.default is not dataclasses.MISSING else (
                    f.default_factory() if f.default_factory is not dataclasses.MISSING
                    else None)
            else:
                default = getattr(obj, f.name)
            out.append(Param(f.name, hints.get(f.name, Any), default))
        return out
    hints = typing.get_type_hints(obj)
    return [Param(p.name, hints.get(p.name, Any), p.default)
            for p in inspect.signature(obj).parameters.values()
            if p.default is not inspect.Parameter.empty]


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """(the type without `| None`, whether None is allowed)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _scalar(kind: type, flag: str, text: str) -> Any:
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag}: expected an integer, got {text!r}") from None
    if kind is float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag}: expected a number, got {text!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{flag}: expected a finite number, got {text!r}")
        return v
    return text


def converter(tp: Any, flag: str) -> Callable[[str], Any] | None:
    """str -> value for a field type (None for bool, which becomes a --x / --nox pair)."""
    inner, optional = _unwrap(tp)
    origin = typing.get_origin(inner)
    if inner is bool:
        return None
    if origin in (tuple, list, collections.abc.Sequence) or inner in (tuple, list):
        args = [a for a in typing.get_args(inner) if a is not Ellipsis] or [str]
        fixed = origin is tuple and Ellipsis not in typing.get_args(inner)
        n = len(typing.get_args(inner)) if fixed else None

        def parse_list(text: str) -> Any:
            if optional and text.strip().lower() in _NONE_WORDS:
                return None
            parts = [p.strip() for p in text.split(",") if p.strip()]
            if n is not None and len(parts) != n:
                raise argparse.ArgumentTypeError(
                    f"{flag}: expected {n} comma-separated values, got {text!r}")
            if not parts:
                raise argparse.ArgumentTypeError(f"{flag}: expected a comma-separated list")
            vals = [_scalar(args[i if n else 0], flag, p) for i, p in enumerate(parts)]
            return tuple(vals)
        return parse_list
    kind = inner if inner in (int, float, str) else str

    def parse(text: str) -> Any:
        if optional and text.strip().lower() in _NONE_WORDS:
            return None
        return _scalar(kind, flag, text)
    return parse


def _show(v: Any) -> str:
    if isinstance(v, (tuple, list)):
        return ",".join(str(x) for x in v)
    return str(v)


def add_fields(parser: argparse.ArgumentParser | Any, source: Any, *,
               help: Mapping[str, str] | None = None, rename: Mapping[str, str] | None = None,
               skip: Iterable[str] = (), types_: Mapping[str, Callable[[str], Any]] | None = None,
               preset_fields: Iterable[str] = (), prefix: str = "",
               aliases: Mapping[str, Sequence[str]] | None = None) -> dict[str, str]:
    """Adds one flag per field of `source` (a dataclass or a function); returns flag -> field.

    Defaults shown in --help are the source's defaults; values are stored only when the flag is
    given (argparse.SUPPRESS), so `values_of` tells given flags from defaults.
    """
    help, rename, types_ = dict(help or {}), dict(rename or {}), dict(types_ or {})
    aliases = dict(aliases or {})
    skip, preset_fields = set(skip), set(preset_fields)
    mapping = {}
    for p in params_of(source):
        if p.name in skip:
            continue
        flag = prefix + rename.get(p.name, p.name)
        text = help.get(p.name, p.name.replace("_", " "))
        shown = "from --preset" if p.name in preset_fields else _show(p.default)
        text = text if "default" in text else f"{text} (default: {shown})"
        extra = [f"--{a}" for a in aliases.get(p.name, ())]
        conv = types_.get(p.name) or converter(p.type, "--" + flag)
        if conv is None:  # bool
            parser.add_argument(f"--{flag}", *extra, dest=flag, action="store_const", const=True,
                                default=argparse.SUPPRESS, help=text)
            parser.add_argument(f"--no{flag}", f"--no-{flag.replace('_', '-')}", dest=flag,
                                action="store_const", const=False, default=argparse.SUPPRESS,
                                help=argparse.SUPPRESS)
        else:
            parser.add_argument(f"--{flag}", *extra, dest=flag, type=conv,
                                default=argparse.SUPPRESS, metavar=flag.upper(), help=text)
        mapping[flag] = p.name
    return mapping


def values_of(ns: argparse.Namespace, mapping: Mapping[str, str]) -> dict[str, Any]:
    """{field: value} of the flags in `mapping` that were given on the command line."""
    return {field: getattr(ns, flag) for flag, field in mapping.items() if hasattr(ns, flag)}


def defaults_of(source: Any) -> dict[str, Any]:
    return {p.name: p.default for p in params_of(source)}


# ----------------------------------------------------------------------------- the parser


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors ('prog: error: ... (see --help)') and exit status 2."""

    def error(self, message: str) -> typing.NoReturn:
        message = re.sub(r"^argument (\S+?)(/\S+)?: (\1: )?", r"\1: ", message)
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def new_parser(prog: str, doc: str) -> Parser:
    lines = (doc or "").strip().splitlines()
    return Parser(prog=prog, description=lines[0] if lines else None,
                  epilog="\n".join(lines[1:]).strip() or None,
                  formatter_class=argparse.RawDescriptionHelpFormatter)


def add_common(parser: argparse.ArgumentParser, *, multihost: bool = True,
               progress: bool = False) -> None:
    """--verbose (and --multihost, --progress) for a command."""
    parser.add_argument("--verbose", action="store_true",
                        help="show the libraries' INFO logs (off by default)")
    if multihost:
        parser.add_argument("--multihost", action="store_true",
                            help="call jax.distributed.initialize() first (one process per host)")
    if progress:
        parser.add_argument("--progress", dest="progress", nargs="?", const=True, default=None,
                            type=_bool, metavar="BOOL", help="progress bars (default: when "
                            "stderr is a terminal)")
        parser.add_argument("--noprogress", "--no-progress", dest="progress",
                            action="store_const", const=False, help=argparse.SUPPRESS)


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def progress_enabled(ns: argparse.Namespace) -> bool:
    """--progress / --noprogress, else on only when stderr is a terminal (no \\r floods in logs)."""
    value = getattr(ns, "progress", None)
    return bool(sys.stderr.isatty()) if value is None else bool(value)


def add_generator(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generator", default=None, metavar="DIR",
                        help="generator directory (sparse-jax-convert output; default: the "
                        "embedded MNIST StyleGAN2)")


def add_classifier(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--classifier", default=None, metavar="DIR",
                        help="attribute classifier directory (default: the embedded MNIST one)")


def add_out(parser: argparse.ArgumentParser, what: str, required: bool = True,
            default: str | None = None, overwrite: bool = True) -> None:
    parser.add_argument("--out", required=required, default=default, metavar="PATH", help=what)
    if overwrite:
        parser.add_argument("--overwrite", action="store_true",
                            help="replace this command's outputs in a used --out folder")


def add_preset(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=PRESET_NAMES, default=DEFAULT_PRESET,
                        help="run sizes shared by discover, evaluate and run_paper: quick (the "
                        "README's main job), paper (the paper's sizes), smoke (CI); individual "
                        f"flags override (default: {DEFAULT_PRESET})")


def preset_sizes(name: str) -> Any:
    """The `PaperSizes` of a preset (pipeline/paper.py is their one definition)."""
    from sparse_jax.pipeline import paper

    return {"quick": paper.PaperSizes.quick, "paper": paper.PaperSizes.paper,
            "smoke": paper.PaperSizes.smoke}[name]()


def preset_config(ns: argparse.Namespace, config_cls: type, preset_fields: Mapping[str, str],
                  psi_field: str, command: str) -> Any:
    """A run's config dataclass: its defaults, then the sizes of --preset (`preset_fields`:
    PaperSizes field -> config field), then the flags given; a given truncation 'default'
    becomes the generator directory's psi (`psi_without_cutoff`)."""
    sizes = preset_sizes(ns.preset)
    base = {field: getattr(sizes, size) for size, field in preset_fields.items()}
    given = values_of(ns, ns._fields)
    if given.get(psi_field) == "default":
        given[psi_field] = psi_without_cutoff("default", ns.generator, command)
    try:
        return dataclasses.replace(config_cls(), **{**base, **given})
    except ValueError as e:
        raise UserError(str(e).replace(f"{config_cls.__name__}: ", "--")) from None


# ----------------------------------------------------------------------------- truncation

TRUNCATION_HELP = ("truncation psi (1: none), or 'default' for the generator directory's own "
                   "defaults (e.g. StyleGAN v1: psi 0.7 on the first 8 ws slots)")


def psi_type(text: str) -> float | str:
    if text.strip().lower() == "default":
        return "default"
    return _scalar(float, "--truncation_psi", text)


def resolve_truncation(psi: float | str, cutoff: int | None, generator: str | None,
                       cutoff_given: bool = True) -> tuple[float, int | None]:
    """(psi, cutoff) with 'default' read from the generator directory's `defaults`.

    An explicit --truncation_cutoff wins over the directory's cutoff.
    """
    if psi != "default":
        return float(psi), cutoff
    from sparse_jax.io import model_dirs

    path = generator or model_dirs.default_generator_path()
    d = model_dirs.generator_defaults(path)
    psi_d = float(d.get("truncation_psi", 1.0))
    cut_d = d.get("truncation_cutoff")
    return psi_d, (cutoff if cutoff_given and cutoff is not None else
                   (None if cut_d is None else int(cut_d)))


def psi_without_cutoff(psi: float | str, generator: str | None, command: str) -> float:
    """For commands whose walks truncate every ws slot: 'default' must not need a cutoff."""
    p, cut = resolve_truncation(psi, None, generator)
    if cut is not None:
        raise UserError(f"--truncation_psi default: this generator's default truncates only the "
                        f"first {cut} ws slots, which {command} does not support; pass a number")
    return p


# ----------------------------------------------------------------------------- input checks


def check_input_file(path: str, flag: str, kind: str = "", what: str = "file") -> str:
    """An existing regular file (`kind` 'npz' / 'npy' also checks the file's magic bytes)."""
    if not os.path.exists(path):
        raise UserError(f"{flag} {path}: {what} not found")
    if not os.path.isfile(path):
        raise UserError(f"{flag} {path}: not a file")
    magic = {"npz": (b"PK\x03\x04", b"PK\x05\x06"), "npy": (b"\x93NUMPY",)}.get(kind)
    if magic:
        with open(path, "rb") as f:
            head = f.read(8)
        if not head.startswith(magic):
            what = "an .npz archive (e.g. a direction file written by discover)" \
                if kind == "npz" else "a NumPy .npy file (np.save)"
            raise UserError(f"{flag} {path}: not {what}")
    return path


def _join_negative_lists(argv: Sequence[str]) -> list[str]:
    """['--distances', '-2,0,2'] -> ['--distances=-2,0,2'] (argparse reads '-2,0,2' as a flag)."""
    out: list[str] = []
    for arg in argv:
        if (out and out[-1].startswith("--") and "=" not in out[-1]
                and re.fullmatch(r"-[\d.][\d.,eE+-]*", arg)):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def check_direction_file(path: str, flag: str) -> str:
    """A direction file: our / GANSpace's .npz, or a SeFa-style plain [k, w_dim] .npy array."""
    kind = "npy" if path.lower().endswith(".npy") else "npz"
    return check_input_file(path, flag, kind, "direction file")


def check_npy_array(path: str, flag: str) -> Any:
    """A readable, finite, numeric .npy array (returned as loaded)."""
    import numpy as np

    check_input_file(path, flag, "npy")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise UserError(f"{flag} {path}: not a plain numeric .npy array ({e})") from None
    if arr.dtype.kind not in "fiu":
        raise UserError(f"{flag} {path}: expected a float array, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise UserError(f"{flag} {path}: {bad} value(s) are NaN or Inf; expected finite latents")
    return arr


def check_input_dir(path: str | None, flag: str) -> None:
    if path is not None and not os.path.isdir(path):
        raise UserError(f"{flag} {path}: no such directory")


def _probe_writable(folder: str, flag: str, path: str) -> None:
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise UserError(f"{flag} {path}: cannot write there ({e.strerror or e})") from None


def _make_dirs(folder: str, flag: str, path: str) -> None:
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise UserError(f"{flag} {path}: cannot create folder {folder} "
                        f"({e.strerror or e})") from None


def check_output_file(path: str, flag: str = "--out", exts: Sequence[str] = (".png",)) -> str:
    """Checks an output file path before any work: extension, a writable (created) folder."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in exts:
        raise UserError(f"{flag} {path}: expected a {' or '.join(exts)} path, got "
                        f"{ext or 'no extension'!r}")
    if os.path.isdir(path):
        raise UserError(f"{flag} {path}: is a folder, expected a {'/'.join(exts)} file")
    folder = os.path.dirname(os.path.abspath(path))
    _make_dirs(folder, flag, path)
    _probe_writable(folder, flag, path)
    return path


def check_output_parent(path: str, flag: str) -> str:
    """The folder that will hold `path` exists (or is created) and is writable."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{flag} {path}: exists and is not a folder")
    folder = os.path.dirname(os.path.abspath(path))
    _make_dirs(folder, flag, path)
    _probe_writable(folder, flag, path)
    return path


def check_output_dir(path: str, overwrite: bool, outputs: Sequence[str], flag: str = "--out",
                     command: str = "") -> str:
    """An output folder that is new, empty or (with --overwrite) cleared of `outputs`.

    Args:
      outputs: glob patterns of what the command writes there (files or folders); --overwrite
        removes those and nothing else, so a rerun never mixes new files with old ones.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{flag} {path}: exists and is not a folder")
    used = sorted(os.listdir(path)) if os.path.isdir(path) else []
    used = [f for f in used if not f.startswith(".write-test-")]
    if used and not overwrite:
        shown = ", ".join(used[:4]) + (", ..." if len(used) > 4 else "")
        raise UserError(f"{flag} {path}: folder already holds files ({shown}); choose a new "
                        f"folder or pass --overwrite to replace {command or 'the'} outputs")
    if used:
        from sparse_jax.core import resume

        resume.remove_outputs(path, outputs)
    _make_dirs(path, flag, path)
    _probe_writable(path, flag, path)
    return path


# Folders of resumable runs this command opened: an interruption or error names them.
_OPEN_RUNS: list[str] = []
# Settings that change how fast a run goes, not what it computes (sample i and walk item i
# do not depend on the batching): a run resumes with other values of these.
SPEED_ONLY = ("batch", "chunk")


_NO_CLASSIFIER = object()


def run_settings(config: Mapping[str, Any], generator: str | None,
                 classifier: str | None | object = _NO_CLASSIFIER, **inputs: Any) -> dict:
    """What identifies a resumable run in its folder (`core.resume`): its config (less the
    SPEED_ONLY values), the generator's and (when the run has one) the classifier's content
    fingerprint (None: the embedded default), and any further `inputs` as given."""
    from sparse_jax.core import resume
    from sparse_jax.io import model_dirs

    out = {"config": {k: v for k, v in config.items() if k not in SPEED_ONLY}, **inputs,
           "generator_fingerprint": resume.fingerprint(
               generator or model_dirs.default_generator_path())}
    if classifier is not _NO_CLASSIFIER:
        out["classifier_fingerprint"] = resume.fingerprint(
            classifier or model_dirs.default_classifier_path())
    return out


def open_run(path: str, overwrite: bool, outputs: Sequence[str], command: str,
             settings: Mapping[str, Any], flag: str = "--out") -> Any:
    """The output folder of a resumable run (`core.resume.open_run_folder`), checked before
    any work: new or empty, holding this run unfinished (resumed, said on stdout) or finished
    (nothing to do, said on stdout), or refused in one line; --overwrite replaces `outputs`.

    Returns:
      The `core.resume.RunFolder`.
    """
    from sparse_jax.core import resume

    check_output_parent(path, flag)
    if os.path.isdir(path):
        _probe_writable(path, flag, path)  # before the run state is written there
    try:
        run = resume.open_run_folder(path, command, settings, outputs, overwrite, flag)
    except resume.RunFolderError as e:
        raise UserError(str(e)) from None
    if run.finished:
        print(f"{path} already holds this finished {command} run ({resume.STATE_FILE}); "
              f"nothing to do (--overwrite recomputes it)")
    else:
        _OPEN_RUNS.append(path)
        if run.resumed:
            print(f"resuming the unfinished {command} run in {path} from its finished parts "
                  f"({resume.PARTIAL_DIR}/)")
    return run


def _resume_hint() -> str:
    """How to resume, for the last line of a run that stopped with its folder unfinished."""
    from sparse_jax.core import resume

    for path in _OPEN_RUNS:
        try:
            state = resume.read_state(path) if os.path.isdir(path) else None
        except ValueError:  # an unreadable state file: the error itself is what matters
            return ""
        if state is not None and state.get("status") == "running":
            return (f"; finished parts are kept in {os.path.join(path, resume.PARTIAL_DIR)}: "
                    f"rerun the same command to resume")
    return ""


# ----------------------------------------------------------------------------- running


def quiet_logs(verbose: bool = False) -> None:
    """absl (Orbax) and JAX log every checkpoint step at INFO; a user wants warnings only."""
    import logging as py_logging

    from absl import logging

    level = logging.INFO if verbose else logging.WARNING
    logging.set_verbosity(level)
    for name in ("jax", "orbax", "absl"):
        py_logging.getLogger(name).setLevel(py_logging.INFO if verbose else py_logging.WARNING)


def one_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return "; ".join(lines)


def _user_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ValueError, OSError]
    try:
        from sparse_jax.discovery.features import BatchOutOfMemory

        errors.append(BatchOutOfMemory)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def run_command(prog: str, build: Callable[[], argparse.ArgumentParser],
                body: Callable[[argparse.ArgumentParser, argparse.Namespace], int | None],
                argv: Sequence[str] | None = None, safe_stop: bool = False) -> int:
    """Parses argv and runs `body`; returns the exit status. Bad input is one line on stderr.

    With `safe_stop` (the resumable runs), Ctrl-C and SIGTERM stop at the next safe point
    (`core.stopping`); otherwise Ctrl-C raises at once, as usual.

    Errors that are the user's (ValueError, OSError, out of memory) print as
    '<prog>: error: <message>' with status 1; set SPARSE_JAX_DEBUG=1 for the traceback.
    """
    parser = build()
    try:
        ns = parser.parse_args(_join_negative_lists(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:  # --help (0) and usage errors (2)
        return int(e.code or 0)
    quiet_logs(getattr(ns, "verbose", False))
    _OPEN_RUNS.clear()
    from sparse_jax.core import stopping

    try:
        if getattr(ns, "multihost", False):
            from sparse_jax.core import sharding

            sharding.initialize_distributed(True)
        with stopping.stop_at_safe_points() if safe_stop else contextlib.nullcontext():
            return int(body(parser, ns) or 0)
    except stopping.StopRequested as e:
        if e.signal_name == "SIGTERM":
            print(f"{prog}: terminated (SIGTERM){_resume_hint()}", file=sys.stderr)
            return 143
        print(f"{prog}: interrupted{_resume_hint()}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"{prog}: interrupted{_resume_hint()}", file=sys.stderr)
        return 130
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else (
            print(e.code, file=sys.stderr) or 1)
    except _user_errors() as e:
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"{prog}: error: {one_line(e)}{_resume_hint()}", file=sys.stderr)
        return 1

