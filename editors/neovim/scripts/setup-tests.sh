#!/usr/bin/env bash
# Installs what the Neovim end-to-end tests (tests/editors/test_neovim.py) need on a
# fresh Debian 12 machine: Debian's neovim package (0.7.2). Idempotent: does nothing
# when nvim is already on PATH. Run as root (or with sudo available).
set -euo pipefail

if command -v nvim >/dev/null 2>&1; then
  echo "setup-tests: $(nvim --version | head -n 1) already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "setup-tests: nvim is missing and this is not root; install Debian's neovim package" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends neovim >/dev/null
echo "setup-tests: installed $(nvim --version | head -n 1)"
