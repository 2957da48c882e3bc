"""How llama.cpp is built for lspilot: for every x86-64 machine, not the one it builds on.

llama-cpp-python compiles llama.cpp with ``-march=native`` unless told otherwise. A build
made on a CPU with AVX-512 or AMX (or a VM that advertises AMX without allowing it) then
dies with SIGILL on the first request elsewhere, and pip's wheel cache hands that build
to the next install whatever the machine, because it keys wheels by the source archive
only, never by ``CMAKE_ARGS``. So lspilot builds with a fixed portable baseline (x86-64-v3:
AVX2, FMA, F16C, BMI2; nothing newer) and keeps the wheel in a cache of its own whose
key holds these flags: a wheel built with other flags is never reused, and one whose bytes
differ from the SHA-256 recorded when it was built is built again.

The recipe only: the script that builds and caches the wheel is ``dev/llama_wheel.py``,
which loads this file before lspilot is installed, so it imports the standard library
only. The server uses it to name the fix when llama.cpp dies of an illegal instruction.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import sys
from pathlib import Path

LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
# Bump when the recipe changes in a way the flags do not show.
RECIPE = "1"
# ggml's options: the x86-64-v3 set on, native tuning and everything newer off.
PORTABLE_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF",
    "-DGGML_SSE42=ON", "-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_BMI2=ON",
    "-DGGML_FMA=ON", "-DGGML_F16C=ON",
    "-DGGML_AVX_VNNI=OFF", "-DGGML_AVX512=OFF", "-DGGML_AVX512_VBMI=OFF",
    "-DGGML_AVX512_VNNI=OFF", "-DGGML_AVX512_BF16=OFF",
    "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF",
)
# What the portable build needs of the CPU, as /proc/cpuinfo names it.
REQUIRED_CPU_FLAGS = ("avx", "avx2", "fma", "f16c", "bmi2")


def cmake_args() -> str:
    return " ".join(PORTABLE_CMAKE_ARGS)


def reinstall_command() -> str:
    """The one command that replaces a non-portable llama.cpp in the current Python."""
    return (f"CMAKE_ARGS={shlex.quote(cmake_args())} {shlex.quote(sys.executable)} -m pip "
            f"install --force-reinstall --no-cache-dir --no-deps '{LLAMA_CPP_PYTHON}'")


def wheel_key(python_tag: str | None = None) -> str:
    """What decides whether a cached wheel may be reused: version, flags, Python, machine."""
    tag = python_tag or f"cp{sys.version_info.major}{sys.version_info.minor}"
    parts = [RECIPE, LLAMA_CPP_PYTHON, cmake_args(), tag, platform.machine(), sys.platform]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


# Beside each cached wheel: "<sha256>  <wheel name>\n" (sha256sum's format), written when it
# was built; a wheel whose bytes no longer match it is not reused.
DIGEST_SUFFIX = ".sha256"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def digest_file(wheel: Path) -> Path:
    return wheel.with_name(wheel.name + DIGEST_SUFFIX)


def record_digest(wheel: Path, digest: str | None = None) -> None:
    """Write the wheel's SHA-256 beside it, whole (a temporary file, then a rename)."""
    target = digest_file(wheel)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_text(f"{digest or file_sha256(wheel)}  {wheel.name}\n", encoding="utf-8")
    os.replace(temporary, target)


def digest_problem(wheel: Path) -> str | None:
    """Why the cached ``wheel`` may not be reused, or None when its bytes are the ones built."""
    try:
        recorded = digest_file(wheel).read_text(encoding="utf-8").split()
    except OSError:
        return "no SHA-256 was recorded for it when it was built"
    if not recorded:
        return "its recorded SHA-256 is empty"
    actual = file_sha256(wheel)
    if recorded[0].lower() != actual:
        return (f"its SHA-256 is {actual}, not the {recorded[0]} recorded when it was built "
                "(changed or damaged since)")
    return None


def missing_cpu_flags(cpuinfo: str | None = None) -> list[str]:
    """The flags the portable build needs that this CPU lacks ([] when unknown)."""
    if cpuinfo is None:
        if platform.machine() not in ("x86_64", "AMD64"):
            return []  # the flags are x86's; other machines build for their own baseline
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []  # not Linux: nothing to say
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            have = set(line.partition(":")[2].split())
            return [flag for flag in REQUIRED_CPU_FLAGS if flag not in have]
    return []
