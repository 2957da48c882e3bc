#!/usr/bin/env bash
# Installs what the editor end-to-end tests need on a fresh Debian 12 machine:
# Debian's neovim (0.7.2) for tests/editors/test_neovim.py, and emacs-nox with
# elpa-eglot (Emacs 28 has no eglot of its own) for tests/editors/test_emacs.py
# (about 40 s more), and elpa-lsp-mode for the lsp-mode snippet (about 40 s). Idempotent: installs only what is missing. Run as root (or with
# sudo available).
set -euo pipefail

missing=()
command -v nvim >/dev/null 2>&1 || missing+=(neovim)
command -v emacs >/dev/null 2>&1 || missing+=(emacs-nox)
if ! emacs --batch --eval "(kill-emacs (if (require 'eglot nil t) 0 1))" >/dev/null 2>&1; then
  missing+=(elpa-eglot)
fi
# lsp-mode, for the README's lsp-mode snippet (tests/editors/test_emacs.py).
if ! emacs --batch --eval "(progn (package-initialize) (kill-emacs (if (require 'lsp-mode nil t) 0 1)))" >/dev/null 2>&1; then
  missing+=(elpa-lsp-mode)
fi

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup-tests: $(nvim --version | head -n 1) and $(emacs --version | head -n 1) with eglot already installed"
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
echo "setup-tests: installed ${missing[*]}: $(nvim --version | head -n 1), $(emacs --version | head -n 1)"
