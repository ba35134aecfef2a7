"""The C twin (firmware_bridge/): built with gcc from pytest, checked against the shared
vectors and MCU scenarios, and fuzzed side by side with the Python decoder."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FW = ROOT / "firmware_bridge"
CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wshadow",
          "-Wconversion", "-Wno-sign-conversion"]

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")


def _gcc(out: Path, *sources: str) -> Path:
    subprocess.run(["gcc", *CFLAGS, f"-I{FW / 'include'}", f"-I{FW / 'src'}", "-o", str(out),
                    *(str(FW / s) for s in sources)], check=True, capture_output=True, text=True)
    return out


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return tmp_path_factory.mktemp("fwbuild")


def test_c_codec_agrees_with_shared_vectors(build):
    exe = _gcc(build / "test_vectors", "tests/test_vectors.c", "src/mb_codec.c")
    r = subprocess.run([str(exe), str(FW / "vectors/vectors.txt")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout
    assert re.search(r"vectors: (\d+) checked, 0 failures", r.stdout)


def test_c_firmware_agrees_with_python_mcu_scenarios(build):
    exe = _gcc(build / "test_scenarios", "tests/test_scenarios.c", "src/mb_codec.c",
               "src/mb_firmware.c")
    r = subprocess.run([str(exe), str(FW / "vectors/scenarios.txt")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout
    m = re.search(r"scenarios: (\d+) scenarios, (\d+) steps, 0 failures", r.stdout)
    assert m and int(m.group(1)) >= 10


def test_c_reference_main_loop_end_to_end(build):
    """mb_fw_poll with board hooks: refused before handshake, tracks, clamps, watchdog holds."""
    exe = _gcc(build / "loopback", "examples/loopback.c", "src/mb_codec.c", "src/mb_firmware.c")
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "loopback: ok" in r.stdout, r.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_makefile_builds_and_tests(tmp_path):
    r = subprocess.run(["make", "-C", str(FW), f"BUILD={tmp_path}", "all", "test"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_c_sources_are_embedded_friendly():
    """No heap, no stdio, no libm in the firmware sources (fixed buffers only)."""
    for name in ("src/mb_codec.c", "src/mb_firmware.c", "include/mb_protocol.h",
                 "include/mb_firmware.h"):
        text = (FW / name).read_text()
        code = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        for banned in ("malloc", "calloc", "realloc", "free(", "stdio.h", "math.h", "double"):
            assert banned not in code, (name, banned)


@pytest.fixture(scope="module")
def fuzz():
    spec = importlib.util.spec_from_file_location("mb_fuzz", FW / "fuzz/fuzz.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["mb_fuzz"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_random_host_traffic_same_decisions_in_python_and_c_firmware(build, fuzz):
    res = fuzz.run_mcu_fuzz(10, 200, seed=2, build_dir=build)
    assert res["exit"] == 0 and res["steps"] == 2000, res
    assert res["python_c_disagreements"] == 0


def test_fuzz_small_both_decoders(build, fuzz):
    mod = fuzz
    res = mod.run_fuzz(20_000, seed=1, build_dir=build, timeout_s=120)
    assert res["c_harness_exit"] == 0
    assert res["python_c_mismatches"] == 0, res["first_mismatch"]
    assert res["corrupt_accepted"] == 0
    assert res["resync_failures"] == 0
    assert res["duplicates_flagged"] > 0 and res["reordered_flagged"] > 0
    assert res["rejected_by_reason"]["crc"] > 0 and res["rejected_by_reason"]["cobs"] > 0
