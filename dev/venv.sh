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
    echo "==> installing lspilot${extras:+[$extras]} into .venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    if [[ ",$extras," == *",local,"* ]]; then
      _install_showing_build "$root" "$venv" "$spec"
    else
      (cd "$root" && "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$spec")
    fi
    echo "$want" > "$stamp"
  fi
}

# The `local` extra needs llama-cpp-python, which builds llama.cpp from source (minutes on
# a small machine). It is built for any x86-64 machine, not this one, and kept in
# lspilot's own wheel cache under a key of its build flags (dev/llama_wheel.py; the recipe
# is server/lspilot/local/build.py): pip's cache ignores CMAKE_ARGS and would hand a native
# build to another CPU. Show that
# it is building instead of seeming to hang: the full log goes to a file, and only the
# milestones and the compiler's N/M steps show.
_install_showing_build() {
  local root="$1" venv="$2" spec="$3"
  local log="$venv/llama-build.log"
  local cores; cores="$(nproc 2>/dev/null || echo 2)"
  local started=$SECONDS status=0 wheel
  if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1; then
    echo "==> installing g++ (llama-cpp-python compiles llama.cpp)"
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq g++ >/dev/null
    else
      sudo apt-get update -qq && sudo apt-get install -y -qq g++ >/dev/null
    fi
  fi
  echo "    llama.cpp: a portable build (AVX2, no native tuning), once: 10 to 25 minutes on" \
    "2 cores (full log: $log)"
  set +e
  CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$cores}" \
    "$venv/bin/python" "$root/dev/llama_wheel.py" wheel --python "$venv/bin/python" \
    2>&1 | tee "$log" | _show_build_progress
  status=${PIPESTATUS[0]}
  set -e
  if [ "$status" != 0 ]; then
    echo "==> building llama.cpp failed; the last lines of $log:" >&2
    tail -n 40 "$log" >&2
    return "$status"
  fi
  wheel="$(tail -n 1 "$log")"
  # The wheel named on the command line is the one pip takes for llama-cpp-python.
  if ! (cd "$root" && "$venv/bin/python" -m pip install -q --disable-pip-version-check \
      -e "$spec" "$wheel") >>"$log" 2>&1; then
    echo "==> pip failed; the last lines of $log:" >&2
    tail -n 40 "$log" >&2
    return 1
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
    elif [[ "$line" =~ ^(Building\ wheel|Built\ llama|Using\ cached\ wheel|This\ CPU|ERROR|error:) ]]
    then
      printf '    %s\n' "${line:0:150}"
    fi
  done
}
