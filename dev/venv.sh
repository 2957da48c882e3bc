# Sourced by the dev scripts: make sure .venv exists with lspilot (and extras) installed.
# Usage: ensure_venv [EXTRAS]   e.g. ensure_venv dev
ensure_venv() {
  local extras="${1:-}"
  local root; root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  local venv="$root/.venv"
  local python="${PYTHON:-python3}"
  if [ ! -x "$venv/bin/python" ]; then
    echo "==> creating $venv"
    if ! "$python" -m venv "$venv" 2>/dev/null; then
      # Debian ships venv support separately.
      echo "==> installing python3-venv (Debian keeps it out of the base python3)"
      rm -rf "$venv"
      if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      else
        sudo apt-get update -qq && sudo apt-get install -y -qq python3-venv >/dev/null
      fi
      "$python" -m venv "$venv"
    fi
  fi
  # Reinstall only when the project's requirements changed.
  local spec=".${extras:+[$extras]}"
  local stamp="$venv/.lspilot-installed"
  local want; want="$(cat "$root/pyproject.toml" | sha256sum | cut -c1-16)-$extras"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> installing lspilot$spec into .venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    (cd "$root" && "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$spec")
    echo "$want" > "$stamp"
  fi
}
