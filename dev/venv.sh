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
    if [[ ",$extras," == *",local,"* ]]; then
      _install_showing_build "$root" "$venv" "$spec"
    else
      (cd "$root" && "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$spec")
    fi
    echo "$want" > "$stamp"
  fi
}

# The `local` extra builds llama-cpp-python from source (minutes on a small machine; pip
# caches the wheel afterwards). Show that it is building instead of seeming to hang: pip's
# verbose output goes to a log, and only its milestones and the compiler's N/M steps show.
_install_showing_build() {
  local root="$1" venv="$2" spec="$3"
  local log="$venv/pip-install.log"
  local cores; cores="$(nproc 2>/dev/null || echo 2)"
  local started=$SECONDS status=0
  if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1; then
    echo "==> installing g++ (llama-cpp-python compiles llama.cpp)"
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq g++ >/dev/null
    else
      sudo apt-get update -qq && sudo apt-get install -y -qq g++ >/dev/null
    fi
  fi
  echo "    llama-cpp-python may build from source: 10-15 minutes on 2 cores (full log: $log)"
  set +e
  (cd "$root" && CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$cores}" \
    "$venv/bin/python" -m pip install -v --disable-pip-version-check -e "$spec" 2>&1) \
    | tee "$log" | _show_build_progress
  status=${PIPESTATUS[0]}
  set -e
  if [ "$status" != 0 ]; then
    echo "==> pip failed; the last lines of $log:" >&2
    tail -n 40 "$log" >&2
    return "$status"
  fi
  echo "    installed in $(( SECONDS - started )) s"
}

# pip -v output in, a few lines out: milestones, and the build's progress every 10 %.
_show_build_progress() {
  local started=$SECONDS shown=-10 line step total percent
  while IFS= read -r line; do
    if [[ "$line" =~ ^[[:space:]]*\[([0-9]+)/([0-9]+)\] ]]; then
      step="${BASH_REMATCH[1]}" total="${BASH_REMATCH[2]}"
      percent=$(( step * 100 / total ))
      if (( percent / 10 > shown / 10 )) || (( step == total )); then
        shown=$percent
        printf '    building llama.cpp: %3d%% (%s/%s), %d s\n' \
          "$percent" "$step" "$total" $(( SECONDS - started ))
      fi
    elif [[ "$line" =~ ^(Collecting\ llama|Building\ wheel|Successfully|Using\ cached\ llama|ERROR|error:) ]]
    then
      printf '    %s\n' "${line:0:150}"
    fi
  done
}
