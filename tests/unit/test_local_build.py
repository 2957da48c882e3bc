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
