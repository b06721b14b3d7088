"""Fuzzes the checkpoint converters in process: every mutant is converted or refused cleanly.

    python bench/fuzz_converter.py --n 10000 --seed 0

Every supported format's shared fixture is mutated (NVIDIA TensorFlow pickles: StyleGAN v1 32 and
128 px, StyleGAN2 TF; the stylegan2-ada-pytorch snapshot; a rosinality `.pt` written by
tests/torch_fixtures.py when torch is importable) and each mutant goes through
`converters.convert_bytes` in this process (no subprocess per mutant, nothing written to disk).
Mutations: truncation at a random offset, bit flips (anywhere / in the opcode stream), random
bytes over opcodes, swapped and foreign globals (os.system, builtins.eval, ...), injected payloads
that would create a marker file if any of their globals were called, embedded source that would
create it if executed, object / structured / string dtypes, huge claimed shapes and byte lengths,
deep nesting (lists, tuples, dicts up to 10^5 deep), wrong memo references, deleted and duplicated
opcodes. Outcome of each mutant: a clean refusal (`ConversionError`, incl. `UnsafePickleError`),
a successful conversion, or an uncaught exception (anything else: a converter bug). After every
mutant the marker file is checked ("code executed"). Prints a markdown table.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import io
import os
import pickletools
import platform
import resource
import struct
import sys
import tempfile
import time
import traceback
import zipfile
from typing import Callable

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import converters  # noqa: E402
from converters.errors import ConversionError  # noqa: E402

SHARED = os.environ.get("SPARSE_JAX_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
TF_CASES = ("sg1_r32_rgb", "sg1_r128_rgb", "sg2_r32_rgb")
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"}
FOREIGN_GLOBALS = [
    ("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"),
    ("builtins", "getattr"), ("builtins", "__import__"), ("builtins", "open"),
    ("subprocess", "Popen"), ("subprocess", "call"), ("shutil", "rmtree"), ("pickle", "loads"),
    ("numpy", "load"), ("numpy", "frombuffer"), ("numpy.lib.format", "read_array"),
    ("torch", "load"), ("dnnlib.util", "call_func_by_name"), ("dnnlib.tflib.tfutil", "run"),
    ("tfutil", "Network"), ("copyreg", "_reconstructor"), ("__builtin__", "eval"),
    ("nt", "system"), ("runpy", "run_path"), ("code", "InteractiveInterpreter"),
]


# ----------------------------------------------------------------------------- pickle surgery


def _str_op(s: str) -> bytes:
    b = s.encode("utf-8", "surrogatepass")
    return (b"\x8c" + bytes([len(b)]) + b) if len(b) < 256 else (
        b"X" + struct.pack("<I", len(b)) + b)


def _int_op(v: int) -> bytes:
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if -2**31 <= v < 2**31:
        return b"J" + struct.pack("<i", v)
    raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw  # LONG1


def _bytes_op(b: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(b)) + b  # BINBYTES


def strip_frames(data: bytes) -> bytes:
    """The same pickle without FRAME opcodes (optional in protocol 4), so edits may change
    lengths. Returns `data` unchanged when it does not parse."""
    try:
        ops = list(pickletools.genops(data))
    except Exception:
        return data
    out, last = [], 0
    for op, _, pos in ops:
        if op.name == "FRAME":
            out.append(data[last:pos])
            last = pos + 9
    out.append(data[last:])
    return b"".join(out)


@dataclasses.dataclass
class Op:
    name: str
    arg: object
    pos: int
    end: int


def op_map(data: bytes) -> list[Op]:
    ops = list(pickletools.genops(data))
    out = []
    for i, (op, arg, pos) in enumerate(ops):
        end = ops[i + 1][2] if i + 1 < len(ops) else len(data)
        out.append(Op(op.name, arg, pos, end))
    return out


@dataclasses.dataclass
class Target:
    """A fixture pickle and the places mutators aim at."""

    name: str
    data: bytes
    ops: list[Op]
    wrap: Callable[[bytes], bytes]  # pickle bytes -> file bytes (identity, or a torch zip)
    globals_: list[tuple[int, ...]]  # (index of the op(s) to rewrite) per global reference
    dtype_ops: list[int]
    shape_ops: list[int]  # indices of int ops inside array shape tuples
    value_ops: list[int]  # small value ops (ints, None, bools): places to put other objects
    string_ops: list[int]
    src_ops: list[int]  # the embedded-source placeholder strings
    bytes_ops: list[int]
    memo_get_ops: list[int]
    boundaries: list[int]


def make_target(name: str, pickle_bytes: bytes, wrap: Callable[[bytes], bytes]) -> Target:
    data = strip_frames(pickle_bytes)
    ops = op_map(data)
    globals_, dtype_ops, shape_ops, value_ops, string_ops, src_ops, bytes_ops, gets = \
        [], [], [], [], [], [], [], []
    for i, op in enumerate(ops):
        if op.name == "STACK_GLOBAL":
            # module and name: strings, or memo references to earlier ones
            strs = [j for j in range(max(0, i - 4), i)
                    if ops[j].name in _STRING_OPS or ops[j].name in ("BINGET", "LONG_BINGET")]
            if len(strs) >= 2:
                globals_.append(tuple(strs[-2:]))
        elif op.name == "GLOBAL":
            globals_.append((i,))
        elif op.name in _STRING_OPS:
            string_ops.append(i)
            if op.arg in ("f4", "f8", "f2", "i8", "b1", "O8") and i + 3 < len(ops) and (
                    ops[i + 1].name in ("MEMOIZE", "BINPUT", "NEWFALSE")):
                dtype_ops.append(i)
            if isinstance(op.arg, str) and ("source" in op.arg or op.arg.startswith("#")):
                src_ops.append(i)
        elif op.name in ("BININT1", "BININT2", "BININT", "NONE", "NEWTRUE", "NEWFALSE"):
            value_ops.append(i)
        elif op.name in ("BINBYTES", "SHORT_BINBYTES", "BINBYTES8"):
            bytes_ops.append(i)
        elif op.name in ("BINGET", "LONG_BINGET"):
            gets.append(i)
    # Array shapes: BUILD state `MARK BININT1 1 MARK <ints> TUPLE`.
    for i in range(len(ops) - 3):
        if ops[i].name == "MARK" and ops[i + 1].name == "BININT1" and ops[i + 1].arg == 1 \
                and ops[i + 2].name == "MARK":
            j = i + 3
            while j < len(ops) and ops[j].name in ("BININT1", "BININT2", "BININT"):
                shape_ops.append(j)
                j += 1
    return Target(name, data, ops, wrap, globals_, dtype_ops, shape_ops, value_ops, string_ops,
                  src_ops, bytes_ops, gets, [op.pos for op in ops[1:-1]])


def apply_edits(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """Replaces data[start:end] by new bytes for each (start, end, new), non-overlapping."""
    out, last = [], 0
    for start, end, new in sorted(edits):
        if start < last:
            continue
        out += [data[last:start], new]
        last = end
    out.append(data[last:])
    return b"".join(out)


# ----------------------------------------------------------------------------- mutators


class Mutators:
    def __init__(self, marker: str):
        self.marker = marker
        m = marker
        self.payloads = [
            b"cos\nsystem\n" + _str_op(f"touch {m}") + b"\x85R",
            b"cposix\nsystem\n" + _str_op(f"touch {m}") + b"\x85R",
            b"cbuiltins\nexec\n" + _str_op(f"open({m!r}, 'w').close()") + b"\x85R",
            b"cbuiltins\neval\n" + _str_op(f"open({m!r}, 'w').close()") + b"\x85R",
            _str_op("subprocess") + _str_op("call") + b"\x93(" + _str_op("touch") + _str_op(m)
            + b"l\x85R",
            b"cbuiltins\nopen\n" + _str_op(m) + _str_op("w") + b"\x86R",
            b"cnumpy\nsave\n" + _str_op(m) + b"K\x01\x86R",
        ]
        self.source = (f"open({m!r}, 'w').write('executed')\nimport os\n"
                       f"os.system('touch {m}')\n")

    def all(self) -> dict[str, Callable]:
        return {n[4:]: getattr(self, n) for n in dir(self) if n.startswith("mut_")}

    # Each mutator: (rng, target) -> pickle bytes, or None when it does not apply.

    def mut_truncate(self, rng, t):
        return t.data[: int(rng.integers(0, len(t.data)))]

    def mut_bitflip_anywhere(self, rng, t):
        b = bytearray(t.data)
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(0, len(b)))
            b[i] ^= 1 << int(rng.integers(0, 8))
        return bytes(b)

    def mut_bitflip_opcodes(self, rng, t):
        b = bytearray(t.data)
        for _ in range(int(rng.integers(1, 4))):
            op = t.ops[int(rng.integers(0, len(t.ops)))]
            i = op.pos + int(rng.integers(0, min(op.end - op.pos, 9)))
            b[i] ^= 1 << int(rng.integers(0, 8))
        return bytes(b)

    def mut_random_bytes(self, rng, t):
        op = t.ops[int(rng.integers(1, len(t.ops)))]
        n = int(rng.integers(1, 33))
        return apply_edits(t.data, [(op.pos, op.pos, rng.bytes(n))])

    def mut_swap_globals(self, rng, t):
        if len(t.globals_) < 2:
            return None
        a, b = rng.choice(len(t.globals_), 2, replace=False)
        ga, gb = t.globals_[a], t.globals_[b]
        seg = lambda g: t.data[t.ops[g[0]].pos:t.ops[g[-1]].end]  # noqa: E731
        if len(ga) != len(gb):
            return None
        return apply_edits(t.data, [(t.ops[ga[0]].pos, t.ops[ga[-1]].end, seg(gb)),
                                    (t.ops[gb[0]].pos, t.ops[gb[-1]].end, seg(ga))])

    def _set_global(self, t, g, module, name):
        if len(g) == 1:  # GLOBAL 'module\nname\n'
            new = b"c" + f"{module}\n{name}\n".encode()
            return apply_edits(t.data, [(t.ops[g[0]].pos, t.ops[g[0]].end, new)])
        return apply_edits(t.data, [(t.ops[g[0]].pos, t.ops[g[0]].end, _str_op(module)),
                                    (t.ops[g[1]].pos, t.ops[g[1]].end, _str_op(name))])

    def mut_foreign_global(self, rng, t):
        if not t.globals_:
            return None
        g = t.globals_[int(rng.integers(0, len(t.globals_)))]
        module, name = FOREIGN_GLOBALS[int(rng.integers(0, len(FOREIGN_GLOBALS)))]
        return self._set_global(t, g, module, name)

    def mut_inject_payload(self, rng, t):
        """A call that would create the marker, popped (POP) or left in place of a value."""
        payload = self.payloads[int(rng.integers(0, len(self.payloads)))]
        if rng.random() < 0.5 or not t.value_ops:
            pos = t.boundaries[int(rng.integers(0, len(t.boundaries)))]
            return apply_edits(t.data, [(pos, pos, payload + b"0")])
        op = t.ops[t.value_ops[int(rng.integers(0, len(t.value_ops)))]]
        return apply_edits(t.data, [(op.pos, op.end, payload)])

    def mut_embedded_source(self, rng, t):
        """Source that writes the marker in place of the placeholder: must convert, not run."""
        if not t.src_ops:
            return None
        edits = [(t.ops[i].pos, t.ops[i].end, _str_op(self.source)) for i in t.src_ops]
        return apply_edits(t.data, edits)

    def mut_bad_dtype(self, rng, t):
        if not t.dtype_ops:
            return None
        i = t.dtype_ops[int(rng.integers(0, len(t.dtype_ops)))]
        code = ["O", "O8", "|O", "V4", "U1", "S4", "<f8", "c8", "M8", "i4", "(2,)f4", "f4,f4",
                "", "f4" * 40][int(rng.integers(0, 14))]
        return apply_edits(t.data, [(t.ops[i].pos, t.ops[i].end, _str_op(code))])

    def mut_huge_shape(self, rng, t):
        choice = rng.random()
        if choice < 0.6 and t.shape_ops:
            i = t.shape_ops[int(rng.integers(0, len(t.shape_ops)))]
            v = [10**12, 2**31 - 1, 2**63, -1, -2**40, 10**6, 0][int(rng.integers(0, 7))]
            return apply_edits(t.data, [(t.ops[i].pos, t.ops[i].end, _int_op(v))])
        if t.bytes_ops:  # a byte string claiming far more data than the file holds
            op = t.ops[t.bytes_ops[int(rng.integers(0, len(t.bytes_ops)))]]
            n = [2**32 - 1, 2**31, 10**9][int(rng.integers(0, 3))]
            head = b"B" + struct.pack("<I", n) if rng.random() < 0.5 else \
                b"\x8e" + struct.pack("<Q", n * 1000)
            return apply_edits(t.data, [(op.pos, op.end, head + t.data[op.end - 4:op.end])])
        return None

    def mut_deep_nesting(self, rng, t):
        depth = int([10, 1000, 20000, 100000][int(rng.integers(0, 4))])
        kind = int(rng.integers(0, 3))
        if kind == 0:  # [[[...]]]
            nested = b"(" * depth + b"]" + b"l" * depth
        elif kind == 1:  # (((...),),)
            nested = b")" + b"\x85" * depth
        else:  # {'a': {'a': ...}}
            nested = _nest_dicts(depth)
        targets = t.value_ops or [0]
        op = t.ops[targets[int(rng.integers(0, len(targets)))]]
        return apply_edits(t.data, [(op.pos, op.end, nested)])

    def mut_wrong_memo(self, rng, t):
        if not t.memo_get_ops:
            return None
        edits = []
        for _ in range(int(rng.integers(1, 4))):
            op = t.ops[t.memo_get_ops[int(rng.integers(0, len(t.memo_get_ops)))]]
            k = int(rng.integers(0, 4000))
            edits.append((op.pos, op.end, b"j" + struct.pack("<I", k)))  # LONG_BINGET
        return apply_edits(t.data, edits)

    def mut_delete_ops(self, rng, t):
        i = int(rng.integers(1, len(t.ops) - 1))
        j = min(len(t.ops) - 1, i + int(rng.integers(1, 4)))
        return apply_edits(t.data, [(t.ops[i].pos, t.ops[j].pos, b"")])

    def mut_duplicate_ops(self, rng, t):
        i = int(rng.integers(1, len(t.ops) - 1))
        j = min(len(t.ops) - 1, i + int(rng.integers(1, 6)))
        seg = t.data[t.ops[i].pos:t.ops[j].pos]
        return apply_edits(t.data, [(t.ops[j].pos, t.ops[j].pos, seg)])

    def mut_change_values(self, rng, t):
        """Other ints / strings / None where the file has small values (kwargs, versions)."""
        if not t.value_ops:
            return None
        edits = []
        for _ in range(int(rng.integers(1, 4))):
            op = t.ops[t.value_ops[int(rng.integers(0, len(t.value_ops)))]]
            new = [_int_op(int(rng.integers(-3, 2000))), b"N", b"\x88", _str_op("resnet"),
                   _int_op(2**70), b"G" + struct.pack(">d", float("nan")), b"]",
                   _bytes_op(b"xyz")][int(rng.integers(0, 8))]
            edits.append((op.pos, op.end, new))
        return apply_edits(t.data, edits)

    def mut_change_strings(self, rng, t):
        if not t.string_ops:
            return None
        op = t.ops[t.string_ops[int(rng.integers(0, len(t.string_ops)))]]
        new = ["G_paper", "G_synthesis_stylegan_revised", "resnet", "", "x" * 300, "D_basic",
               "lod", "synthesis", "\udcff", "G_main", "G_style", "Gs"][int(rng.integers(0, 12))]
        return apply_edits(t.data, [(op.pos, op.end, _str_op(new))])


def _nest_dicts(depth: int) -> bytes:
    # Stack d0 'a' d1 'a' d2 ... d_depth, then each SETITEM puts the top dict into the one below.
    return b"}" + b"\x8c\x01a}" * depth + b"s" * depth


# ----------------------------------------------------------------------------- fixtures


def load_targets(shared: str) -> list[Target]:
    targets = []
    ident = lambda b: b  # noqa: E731
    for case in TF_CASES:
        with open(os.path.join(shared, "reference", "stylegan-tf", f"{case}_nosrc.pkl"),
                  "rb") as f:
            targets.append(make_target(f"tf:{case}", f.read(), ident))
    path = os.path.join(shared, "reference", "stylegan2", "s_res32_small_nosrc.pkl")
    with open(path, "rb") as f:
        targets.append(make_target("ada-pytorch:s_res32_small", f.read(), ident))
    pt = rosinality_fixture(shared)
    if pt is not None:
        targets.append(pt)
    return targets


def rosinality_fixture(shared: str) -> Target | None:
    """A rosinality torch zip from tests/torch_fixtures.py (needs torch); its data.pkl is mutated
    and the zip rebuilt around it."""
    try:
        sys.path.insert(0, os.path.join(ROOT, "tests"))
        import torch_fixtures
    except ImportError:
        return None
    st = dict(np.load(os.path.join(shared, "reference", "stylegan2",
                                   "s_res32_small_G_ema_state.npz")))
    cfg = dict(z_dim=128, w_dim=128, c_dim=0, img_resolution=32, img_channels=3, num_layers=4,
               channel_base=2048, channel_max=128, conv_clamp=256, lr_multiplier=0.01)
    data = torch_fixtures.rosinality_bytes(st, cfg)
    zf = zipfile.ZipFile(io.BytesIO(data))
    members = [(i.filename, zf.read(i.filename)) for i in zf.infolist()]
    pkl_name = next(n for n, _ in members if n.endswith("data.pkl"))

    def wrap(pickle_bytes: bytes) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as out:
            for n, b in members:
                out.writestr(n, pickle_bytes if n == pkl_name else b)
        return buf.getvalue()

    return make_target("rosinality:pt", dict(members)[pkl_name], wrap)


# ----------------------------------------------------------------------------- the run


@dataclasses.dataclass
class Stats:
    tried: int = 0
    refused: int = 0
    converted: int = 0
    uncaught: int = 0
    executed: int = 0


def run(n: int, seed: int, shared: str = SHARED, *, verbose: bool = False) -> dict:
    """Runs `n` mutants. Returns {'by_target', 'by_mutator', 'total', 'uncaught_examples',
    'peak_rss_mb', 'seconds'}."""
    rng = np.random.default_rng(seed)
    workdir = tempfile.mkdtemp(prefix="fuzz_converter_")
    marker = os.path.join(workdir, "CODE_EXECUTED")
    mutators = Mutators(marker)
    table = mutators.all()
    names = sorted(table)
    targets = load_targets(shared)
    by_target = collections.defaultdict(Stats)
    by_mutator = collections.defaultdict(Stats)
    total = Stats()
    examples: list[str] = []
    t0 = time.time()
    cwd = os.getcwd()
    os.chdir(workdir)  # a relative path in a payload would land here too
    try:
        for k in range(n):
            t = targets[k % len(targets)]
            mname = names[int(rng.integers(0, len(names)))]
            mutant = table[mname](rng, t)
            if mutant is None:  # does not apply to this target: plain truncation instead
                mname = "truncate"
                mutant = mutators.mut_truncate(rng, t)
            data = t.wrap(mutant)
            outcome = "converted"
            try:
                converters.convert_bytes(data, f"mutant{k}:{t.name}:{mname}")
            except ConversionError:
                outcome = "refused"
            except Exception as e:  # noqa: BLE001 - what the fuzzer is looking for
                outcome = "uncaught"
                if len(examples) < 20:
                    tb = traceback.format_exception(type(e), e, e.__traceback__)
                    examples.append(f"mutant {k} ({t.name}, {mname}): {type(e).__name__}: "
                                    f"{str(e)[:200]}\n" + "".join(tb[-3:]))
            executed = os.path.exists(marker) or bool(
                set(os.listdir(workdir)) - {"CODE_EXECUTED"})
            for s in (by_target[t.name], by_mutator[mname], total):
                s.tried += 1
                setattr(s, outcome, getattr(s, outcome) + 1)
                s.executed += int(executed)
            if executed:
                for f in os.listdir(workdir):
                    os.remove(os.path.join(workdir, f))
            if verbose and (k + 1) % 500 == 0:
                print(f"{k + 1}/{n} mutants, {time.time() - t0:.0f} s", file=sys.stderr)
    finally:
        os.chdir(cwd)
    return {"by_target": dict(by_target), "by_mutator": dict(by_mutator), "total": total,
            "uncaught_examples": examples,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "seconds": time.time() - t0, "targets": [t.name for t in targets]}


def markdown(result: dict) -> str:
    def rows(group):
        out = []
        for name, s in sorted(group.items()):
            out.append(f"| {name} | {s.tried} | {s.refused} | {s.converted} | {s.uncaught} | "
                       f"{s.executed} |")
        return out

    head = ["| {} | mutants tried | clean refusals | conversions succeeded | uncaught exceptions "
            "| code executed |", "|---|---:|---:|---:|---:|---:|"]
    t = result["total"]
    lines = [head[0].format("fixture"), head[1], *rows(result["by_target"]),
             f"| **total** | **{t.tried}** | **{t.refused}** | **{t.converted}** | "
             f"**{t.uncaught}** | **{t.executed}** |", "",
             head[0].format("mutation"), head[1], *rows(result["by_mutator"]), "",
             f"Peak RSS {result['peak_rss_mb']:.0f} MB; {result['seconds']:.0f} s "
             f"({1000 * result['seconds'] / max(t.tried, 1):.1f} ms per mutant)."]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10000, help="number of mutants")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shared", default=SHARED, help="the shared fixtures folder")
    args = ap.parse_args(argv)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    result = run(args.n, args.seed, args.shared, verbose=True)
    print(f"`python bench/fuzz_converter.py --n {args.n} --seed {args.seed}`, {started}, "
          f"{os.cpu_count()}-core {platform.machine()} CPU, Python {platform.python_version()}, "
          f"numpy {np.__version__}\n")
    print(markdown(result))
    for ex in result["uncaught_examples"]:
        print("\n" + ex)
    return 1 if result["total"].uncaught or result["total"].executed else 0


if __name__ == "__main__":
    sys.exit(main())
