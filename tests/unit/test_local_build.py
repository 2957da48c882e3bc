"""How llama.cpp is built and how its ends are told: pure parts, no model needed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from lspilot.local import build
from lspilot.local.process import describe_exit, exit_hint


def test_the_cache_key_changes_with_the_flags(monkeypatch):
    key = build.wheel_key("cp311")
    assert key == build.wheel_key("cp311")
    assert key != build.wheel_key("cp312")
    monkeypatch.setattr(build, "PORTABLE_CMAKE_ARGS", (*build.PORTABLE_CMAKE_ARGS, "-DX=1"))
    assert build.wheel_key("cp311") != key


def test_the_portable_flags_turn_native_tuning_and_newer_sets_off():
    args = build.cmake_args()
    assert "-DGGML_NATIVE=OFF" in args
    for newer in ("AVX512", "AMX_TILE", "AMX_INT8", "AVX_VNNI"):
        assert f"-DGGML_{newer}=OFF" in args
    assert "-DGGML_AVX2=ON" in args
    assert build.cmake_args() in build.reinstall_command()


def test_missing_cpu_flags_reads_cpuinfo():
    full = "processor: 0\nflags\t\t: fpu sse avx avx2 fma f16c bmi2 sse4_2\n"
    assert build.missing_cpu_flags(full) == []
    old = "processor: 0\nflags\t\t: fpu sse avx sse4_2\n"
    assert build.missing_cpu_flags(old) == ["avx2", "fma", "f16c", "bmi2"]


@pytest.mark.parametrize(("code", "words"), [
    (-signal.SIGILL, "was killed by SIGILL (illegal instruction)"),
    (128 + signal.SIGILL, "was killed by SIGILL (illegal instruction)"),  # through a shell
    (-signal.SIGKILL, "was killed by SIGKILL"),
    (-signal.SIGSEGV, "SIGSEGV (segmentation fault)"),
    (1, "exited with code 1"),
])
def test_exits_in_words(code, words):
    assert words in describe_exit(code)


def test_an_illegal_instruction_names_the_reinstall(monkeypatch):
    monkeypatch.setattr(build, "missing_cpu_flags", lambda cpuinfo=None: [])
    assert build.reinstall_command() in exit_hint(-signal.SIGILL)
    monkeypatch.setattr(build, "missing_cpu_flags", lambda cpuinfo=None: ["avx2"])
    hint = exit_hint(-signal.SIGILL)
    assert "lacks avx2" in hint and "baseUrl" in hint


def _ggml_cpu_library() -> Path | None:
    try:
        import llama_cpp
    except ImportError:
        return None
    found = sorted(Path(llama_cpp.__file__).parent.rglob("libggml-cpu*.so*"))
    return found[0] if found else None


@pytest.mark.skipif(_ggml_cpu_library() is None and not os.environ.get("CI"),
                    reason="llama-cpp-python is not installed (./dev/test installs it; CI "
                    "runs this test)")
@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is missing")
def test_the_installed_llama_cpp_uses_no_avx512_or_amx():
    """The build runs on any x86-64-v3 machine: no zmm (AVX-512) or tmm (AMX) registers."""
    library = _ggml_cpu_library()
    assert library is not None, "llama-cpp-python is not installed"
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(library)],
                             capture_output=True, text=True, check=True).stdout
    assert "ymm" in listing  # it is vectorised (AVX2)...
    assert "%zmm" not in listing, "AVX-512 instructions in " + str(library)
    assert "%tmm" not in listing, "AMX instructions in " + str(library)


# -- the wheel cache (dev/llama_wheel.py) ---------------------------------------------------
FAKE_PYTHON = """#!/bin/sh
# Answers the two things llama_wheel asks of the venv's python: its tag, and a pip wheel.
if [ "$1" = "-c" ]; then echo cp311; exit 0; fi
while [ "$#" -gt 0 ]; do
  if [ "$1" = "-w" ]; then out="$2"; fi
  shift
done
echo build >> "$BUILDS"
printf 'wheel bytes' > "$out/llama_cpp_python-0.3.36-cp311-cp311-linux_x86_64.whl"
"""


def _llama_wheel():
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "dev" / "llama_wheel.py"
    spec = importlib.util.spec_from_file_location("llama_wheel_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_cached_wheel_is_reused_only_while_its_recorded_sha256_matches(
        tmp_path, monkeypatch, capsys):
    llama_wheel = _llama_wheel()
    python = tmp_path / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    builds = tmp_path / "builds"
    monkeypatch.setenv("BUILDS", str(builds))
    cache = tmp_path / "wheels"

    def built() -> int:
        return len(builds.read_text().splitlines()) if builds.exists() else 0

    wheel = llama_wheel.build_wheel(str(python), cache)
    assert built() == 1
    recorded = build.digest_file(wheel).read_text().split()
    assert recorded == [build.file_sha256(wheel), wheel.name]
    assert llama_wheel.build_wheel(str(python), cache) == wheel and built() == 1  # reused

    wheel.write_bytes(b"something else")  # replaced or damaged in the cache
    capsys.readouterr()
    assert llama_wheel.build_wheel(str(python), cache) == wheel and built() == 2
    assert "Not reusing the cached wheel" in capsys.readouterr().out
    assert wheel.read_bytes() == b"wheel bytes"
    assert build.digest_problem(wheel) is None

    build.digest_file(wheel).unlink()  # a wheel with no record (an older cache) is rebuilt
    assert llama_wheel.build_wheel(str(python), cache) == wheel and built() == 3
    assert build.digest_problem(wheel) is None
