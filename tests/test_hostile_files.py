"""Crafted network pickles and weight files, given to every command that reads them.

Each case runs the command as a subprocess and checks: exit code 1 or 2 with a short error on
stderr, no signal, peak memory (the child's own, from wait4) under 1 GiB above a baseline run,
and that no payload ran. All cases run at once (three in parallel) in a module fixture.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import io
import os
import pathlib
import pickle
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import official_pickle_writer as w
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "tests", "tiny_config.py")
MAX_EXTRA_RSS_KB = 1 << 20  # 1 GiB
BOMB_BYTES = 3 << 30  # what the zip bombs inflate to
F32 = np.dtype(np.float32)


@dataclasses.dataclass
class Result:
    returncode: int
    stderr: str
    peak_rss_kb: int
    seconds: float


def _run(argv: list[str], workdir: str, timeout: float = 240) -> Result:
    """Runs argv in workdir; its exit status and peak RSS (from wait4, so this child's alone)."""
    start = time.time()
    with open(os.path.join(workdir, "stdout"), "wb") as out, open(os.path.join(workdir, "stderr"), "w+b") as err:
        proc = subprocess.Popen(argv, cwd=workdir, stdout=out, stderr=err,
                                env={**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")})
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.time() - start > timeout:
                proc.kill()
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return Result(proc.returncode, err.read().decode(errors="replace"), usage.ru_maxrss, time.time() - start)


# --- crafted files -------------------------------------------------------------------------------

class _StorageRef:
    """Pickles (in a torch zip's data.pkl) as the persistent id of storage `key` of `numel` floats."""

    def __init__(self, key: str, numel: int):
        self.key, self.numel = key, numel


def _zip_tensor(key: str, numel: int, offset: int, size: tuple, stride: tuple) -> w.Call:
    return w.Call(w.REBUILD_TENSOR_V2, _StorageRef(key, numel), offset, size, stride, False, collections.OrderedDict())


def _data_pkl(obj, protocol: int = 2) -> bytes:
    f = io.BytesIO()
    with w._placeholder_modules():  # pylint: disable=protected-access
        pickler = pickle.Pickler(f, protocol=protocol)
        pickler.persistent_id = lambda o: (("storage", w.STORAGE_CLASSES[F32], o.key, "cpu", o.numel)
                                           if isinstance(o, _StorageRef) else None)
        pickler.dump(obj)
    return f.getvalue()


def _write_zip(path: str, members: dict[str, bytes | int]) -> str:
    """A zip of stored members (bytes) and bombs (an int: deflated zeros of that size, a few MB).

    A bomb's deflate stream repeats one compressed 64 MiB block of zeros; its CRC is left 0, as
    a reader must refuse it from the declared sizes alone, before inflating anything.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(64 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    central = b""
    with open(path, "wb") as f:
        for name, member in members.items():
            if isinstance(member, int):
                method, payload, crc, size = 8, block * (member >> 26) + b"\x03\x00", 0, member
            else:
                method, payload, crc, size = 0, member, zlib.crc32(member), len(member)
            offset, encoded = f.tell(), name.encode()
            fields = (method, 0, 0x21, crc, len(payload), size, len(encoded), 0)
            f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, *fields) + encoded + payload)
            central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, *fields, 0, 0, 0, 0, offset) + encoded
        start = f.tell()
        f.write(central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central),
                                      start, 0))
    return path


def _network_pickle(path: str, obj, protocol: int = 4) -> str:
    with open(path, "wb") as f:
        w.dump(obj, f, protocol)
    return path


def _net_with_buffer(tensor) -> dict:
    return {"G": w.module_record("Generator", buffers={"x": tensor})}


def _nested_lists(depth: int) -> bytes:
    return b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."


def _payload(marker: str) -> w.Call:
    return w.Call(os.system, f"touch {marker}")


def _protocol0_payload(marker: str) -> bytes:
    return f"cposix\nsystem\n(S'touch {marker}'\ntR.".encode()


def _object_array_pickle() -> bytes:
    return pickle.dumps({"x": np.array([1, "a"], dtype=object)}, protocol=4)


def _craft(d: str, marker: str) -> dict[str, str]:
    """{case: path} of every crafted file (the kind of file is the prefix of the case's name)."""
    p = lambda name: os.path.join(d, name)
    four = np.arange(4, dtype=np.float32)
    storage = {"archive/data/0": four.tobytes()}
    legacy_huge = w.legacy_storage_stream(four).replace(struct.pack("<q", 4), struct.pack("<q", 1 << 40))
    files = {
        "net_stride0_2gib": _network_pickle(p("s0.pkl"), _net_with_buffer(w.tensor(four, 0, (1 << 29,), (0,)))),
        "net_stride0_4tb": _network_pickle(p("s4t.pkl"), _net_with_buffer(w.tensor(four, 0, (1 << 40,), (0,)))),
        "net_out_of_bounds": _network_pickle(p("oob.pkl"), _net_with_buffer(w.tensor(four, 3, (1 << 20,), (1,)))),
        "net_huge_storage": _network_pickle(p("hs.pkl"), _net_with_buffer(w.Call(
            w.REBUILD_TENSOR_V2, w.Call(w.LOAD_FROM_BYTES, legacy_huge), 0, (4,), (1,), False, {}))),
        "net_huge_bytes": _raw(p("hb.pkl"), b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b"x" * 100),
        "net_nested_payload": _network_pickle(p("nested.pkl"), {"G": w.module_record(
            "Generator", modules={"mapping": _payload(marker)})}),
        "net_protocol0_payload": _raw(p("p0.pkl"), _protocol0_payload(marker)),
        "net_object_array": _raw(p("obj.pkl"), _object_array_pickle()),
        "net_deep_nesting": _raw(p("deep.pkl"), _nested_lists(200_000)),
        "net_npz_bomb": _write_zip(p("bomb.npz"), {"w.npy": BOMB_BYTES}),
        "weights_out_of_bounds": _write_zip(p("oob.pt"), {
            "archive/data.pkl": _data_pkl({"w": _zip_tensor("0", 4, 2, (64, 64), (64, 1))}), **storage}),
        "weights_stride0": _write_zip(p("s0.pt"), {
            "archive/data.pkl": _data_pkl({"w": _zip_tensor("0", 4, 0, (1 << 40,), (0,))}), **storage}),
        "weights_huge_numel": _write_zip(p("hn.pt"), {
            "archive/data.pkl": _data_pkl({"w": _zip_tensor("0", 1 << 40, 0, (4,), (1,))}), **storage}),
        "weights_pkl_bomb": _write_zip(p("bomb.pt"), {"archive/data.pkl": BOMB_BYTES}),
        "weights_storage_bomb": _write_zip(p("sbomb.pt"), {
            "archive/data.pkl": _data_pkl({"w": _zip_tensor("0", BOMB_BYTES // 4, 0, (4,), (1,))}),
            "archive/data/0": BOMB_BYTES}),
        "weights_nested_payload": _write_zip(p("evil.pt"), {
            "archive/data.pkl": _data_pkl({"a": {"b": _payload(marker)}})}),
        "weights_protocol0_payload": _write_zip(p("evil0.pt"), {"archive/data.pkl": _protocol0_payload(marker)}),
        "lpips_payload": _raw(p("evil_lpips.pkl"), pickle.dumps({"w": np.ones(2), "x": _payload(marker)})),
        "lpips_object_array": _raw(p("obj_lpips.pkl"), _object_array_pickle()),
    }
    assert sorted(files) == sorted(CASES)
    return files


def _raw(path: str, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return path


CASES = ("net_stride0_2gib", "net_stride0_4tb", "net_out_of_bounds", "net_huge_storage", "net_huge_bytes",
         "net_nested_payload", "net_protocol0_payload", "net_object_array", "net_deep_nesting", "net_npz_bomb",
         "weights_out_of_bounds", "weights_stride0", "weights_huge_numel", "weights_pkl_bomb", "weights_storage_bomb",
         "weights_nested_payload", "weights_protocol0_payload", "lpips_payload", "lpips_object_array")



# --- commands ------------------------------------------------------------------------------------

def _evaluate(flag: str, path: str) -> list[str]:
    return ["-m", "stylegan_jax.evaluate", "--metrics=fid1k_full", "--network=missing.pkl", f"--{flag}={path}"]


COMMANDS = {
    "generate": lambda path: ["-m", "stylegan_jax.generate", f"--network={path}", "--seeds=0", "--outdir=out"],
    "project": lambda path: ["-m", "stylegan_jax.project", f"--network={path}", "--target=none.png", "--outdir=out"],
    "main": lambda path: ["-m", "stylegan_jax.main", f"--config={CONFIG}", "--workdir=run", f"--config.resume={path}"],
    "evaluate_inception": lambda path: _evaluate("inception", path),
    "evaluate_vgg16": lambda path: _evaluate("vgg16", path),
    "evaluate_lpips": lambda path: _evaluate("lpips", path),
}
# Every case runs through the first command that reads its kind of file, a few through the others too.
READERS = {"net": "generate", "weights": "evaluate_inception", "lpips": "evaluate_lpips"}
RUNS = [(case, READERS[case.split("_")[0]]) for case in CASES] + [
    ("net_protocol0_payload", "main"), ("net_stride0_2gib", "project"),
    ("net_nested_payload", "project"), ("weights_out_of_bounds", "evaluate_vgg16"),
    ("weights_pkl_bomb", "evaluate_vgg16")]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """{(case, command): Result} of every run, 'baseline' (a missing file) and 'payload_ran'."""
    return run_all(tmp_path_factory.mktemp("hostile"))


def run_all(root: pathlib.Path) -> dict:
    """Crafts the files in `root` and runs every case and the baseline, three at a time.

    The baseline is the lightest command (generate) given a missing file, so the memory check is
    strict for the others (main alone starts at about 0.5 GiB).
    """
    marker = str(root / "payload-ran")
    files = _craft(str(root), marker)
    runs = [(None, "generate")] + RUNS

    def one(run):
        case, command = run
        workdir = root / f"{case}-{command}"
        workdir.mkdir()
        path = files[case] if case else str(root / "no-such-file.pkl")
        return run, _run([sys.executable, *COMMANDS[command](path)], str(workdir))

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        out = dict(pool.map(one, runs))
    out["baseline"] = out.pop((None, "generate"))
    out["payload_ran"] = os.path.exists(marker)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("case, command", RUNS, ids=[f"{case}-{command}" for case, command in RUNS])
def test_hostile_file_is_refused_in_one_line_without_blowing_up(results, case, command):
    result, baseline = results[case, command], results["baseline"]
    lines = result.stderr.strip().splitlines()
    assert result.returncode in (1, 2), (result.returncode, result.stderr[-2000:])
    assert 1 <= len(lines) <= 3 and "error" in lines[-1], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.peak_rss_kb - baseline.peak_rss_kb < MAX_EXTRA_RSS_KB, (result.peak_rss_kb, baseline.peak_rss_kb)
    assert not results["payload_ran"]
