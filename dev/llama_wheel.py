#!/usr/bin/env python3
"""Build llama-cpp-python portably once, keep it in lspilot's wheel cache, print its path.

Run by dev/venv.sh before lspilot is installed. The recipe (flags, cache key, CPU check)
is server/lspilot/local/build.py, loaded from its file here, so that the server and this
script can never disagree about it. pip's own wheel cache keys by the source archive
alone, never by CMAKE_ARGS: a native build from it could land on another CPU, so this
builds with --no-cache-dir into a cache of its own whose key holds the flags, and records
each wheel's SHA-256 beside it: a cached wheel is reused only while its bytes match.

    python3 dev/llama_wheel.py wheel [--python VENV/bin/python] [--cache DIR]
    python3 dev/llama_wheel.py cmake-args
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

RECIPE_FILE = Path(__file__).resolve().parents[1] / "server" / "lspilot" / "local" / "build.py"


def _recipe() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lspilot_build_recipe", RECIPE_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _recipe()


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
    directory = cache / build.wheel_key(tag)
    found = cached_wheel(directory)
    if found is not None:
        problem = build.digest_problem(found)
        if problem is None:
            print(f"Using cached wheel llama.cpp (portable build): {found}", flush=True)
            return found
        # Anything in the folder could have put it there: it is not installed unchecked.
        print(f"Not reusing the cached wheel {found}: {problem}. Building it again.",
              flush=True)
        found.unlink()
        build.digest_file(found).unlink(missing_ok=True)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory.parent, prefix=".building-") as scratch:
        env = {**os.environ, "CMAKE_ARGS": build.cmake_args()}
        # --no-cache-dir: pip's own cache may hold a native build of the same version.
        subprocess.run(
            [python, "-m", "pip", "wheel", "-v", "--no-deps", "--no-cache-dir",
             "--disable-pip-version-check", "-w", scratch, build.LLAMA_CPP_PYTHON],
            check=True, env=env,
        )
        built = cached_wheel(Path(scratch))
        if built is None:
            raise SystemExit("pip wheel made no llama_cpp_python wheel")
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / built.name
        digest = build.file_sha256(built)
        os.replace(built, target)  # whole or not at all: another install never sees half
        build.record_digest(target, digest)  # until it is there, the wheel is not reused
    print(f"Built llama.cpp (portable build): {target}", flush=True)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    wheel = sub.add_parser("wheel", help="print the path of the portable wheel, built if need be")
    wheel.add_argument("--python", default=sys.executable, help="the venv's python")
    wheel.add_argument("--cache", type=Path, default=None, help="default: ~/.cache/lspilot/wheels")
    sub.add_parser("cmake-args", help="print the CMAKE_ARGS of the portable build")
    args = parser.parse_args()
    if args.what == "cmake-args":
        print(build.cmake_args())
        return 0
    missing = build.missing_cpu_flags()
    if missing:
        print(f"This CPU lacks {', '.join(missing)}, which llama.cpp's portable build needs; "
              "the local model cannot run here (use an endpoint: baseUrl and apiKey).",
              file=sys.stderr)
        return 1
    path = build_wheel(args.python, args.cache or cache_dir())
    print(path, flush=True)  # the last line: the path, for the script that installs it
    return 0


if __name__ == "__main__":
    sys.exit(main())
