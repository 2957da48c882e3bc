"""How llama.cpp is built for lspilot: for every x86-64 machine, not the one it builds on.

llama-cpp-python compiles llama.cpp with ``-march=native`` unless told otherwise. A build
made on a CPU with AVX-512 or AMX (or a VM that advertises AMX without allowing it) then
dies with SIGILL on the first request elsewhere, and pip's wheel cache hands that build
to the next install whatever the machine, because it keys wheels by the source archive
only, never by ``CMAKE_ARGS``. So lspilot builds with a fixed portable baseline (x86-64-v3:
AVX2, FMA, F16C, BMI2; nothing newer) and keeps the wheel in a cache of its own whose
key holds these flags: a wheel built with other flags is never reused.

Standard library only: ``dev/venv.sh`` runs this file as a script before lspilot is
installed (``python3 server/lspilot/local/build.py wheel``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
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


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lspilot" / "wheels"


def cached_wheel(directory: Path) -> Path | None:
    wheels = sorted(directory.glob("llama_cpp_python-*.whl"))
    return wheels[-1] if wheels else None


def build_wheel(python: str, cache: Path) -> Path:
    """The portable wheel for ``python``: from lspilot's cache, or built into it."""
    tag = subprocess.run(
        [python, "-c", "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    directory = cache / wheel_key(tag)
    found = cached_wheel(directory)
    if found is not None:
        print(f"Using cached wheel llama.cpp (portable build): {found}", flush=True)
        return found
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory.parent, prefix=".building-") as scratch:
        env = {**os.environ, "CMAKE_ARGS": cmake_args()}
        # --no-cache-dir: pip's own cache may hold a native build of the same version.
        subprocess.run(
            [python, "-m", "pip", "wheel", "-v", "--no-deps", "--no-cache-dir",
             "--disable-pip-version-check", "-w", scratch, LLAMA_CPP_PYTHON],
            check=True, env=env,
        )
        built = cached_wheel(Path(scratch))
        if built is None:
            raise SystemExit("pip wheel made no llama_cpp_python wheel")
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / built.name
        os.replace(built, target)  # whole or not at all: another install never sees half
    print(f"Built llama.cpp (portable build): {target}", flush=True)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    wheel = sub.add_parser("wheel", help="print the path of the portable wheel, built if need be")
    wheel.add_argument("--python", default=sys.executable, help="the venv's python")
    wheel.add_argument("--cache", type=Path, default=None, help="default: ~/.cache/lspilot/wheels")
    sub.add_parser("cmake-args", help="print the CMAKE_ARGS of the portable build")
    args = parser.parse_args(argv)
    if args.what == "cmake-args":
        print(cmake_args())
        return 0
    missing = missing_cpu_flags()
    if missing:
        print(f"This CPU lacks {', '.join(missing)}, which llama.cpp's portable build needs; "
              "the local model cannot run here (use an endpoint: baseUrl and apiKey).",
              file=sys.stderr)
        return 1
    path = build_wheel(args.python, args.cache or cache_dir())
    # The last line is the path, for the shell script that installs it.
    print(path, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
