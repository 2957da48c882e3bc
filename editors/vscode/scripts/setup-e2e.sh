#!/usr/bin/env bash
# Installs what the VS Code extension's build and its end-to-end test need, on Debian 12 as root.
# Idempotent: a second run only checks and rebuilds the extension (a few seconds).
#
#   1. Debian packages: chromium (+ fonts-liberation for readable screenshots), libkrb5-dev,
#      ripgrep, build-essential; only when missing, without recommends
#   2. the extension: npm ci, compile (tsc strict), lint, package -> editors/vscode/lspilot.vsix
#   3. code-server + playwright-core from editors/vscode/e2e/package-lock.json, into
#      $LSPILOT_VSCODE_E2E_HOME (default ~/.cache/lspilot/vscode-e2e), reused while the lock is unchanged.
#
# Offline facts this relies on are in shared/design/vscode-e2e.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"   # editors/vscode
E2E_SRC="$HERE/e2e"
E2E_HOME="${LSPILOT_VSCODE_E2E_HOME:-$HOME/.cache/lspilot/vscode-e2e}"
START=$SECONDS

log() { printf '[setup-e2e %4ss] %s\n' "$((SECONDS - START))" "$*"; }
die() { printf '[setup-e2e] ERROR: %s\n' "$*" >&2; exit 1; }

# Runs "$@" with its output in LOGFILE, printing a heartbeat so a long step doesn't look hung.
run_logged() {
  local what="$1" logfile="$2"; shift 2
  "$@" >"$logfile" 2>&1 &
  local pid=$! t=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 5; t=$((t + 5))
    if (( t % 20 == 0 )); then
      log "  … $what: ${t}s, last: $(tail -n 1 "$logfile" 2>/dev/null | cut -c1-120)"
    fi
  done
  if ! wait "$pid"; then
    echo "----- last lines of $logfile -----" >&2
    tail -n 60 "$logfile" >&2
    die "$what failed (full log: $logfile)"
  fi
}

# A hash of the files' contents (not their paths: CI runs from a fresh clone elsewhere).
sha() { cat "$@" | sha256sum | cut -c1-16; }

# ---------------------------------------------------------------------------------------------
log "1/3 Debian packages"
missing=()
for pkg in chromium fonts-liberation libkrb5-dev ripgrep build-essential; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  [[ $(id -u) -eq 0 ]] || die "missing Debian packages (${missing[*]}); run this script as root"
  log "  installing ${missing[*]} (apt-get; a minute or two)"
  export DEBIAN_FRONTEND=noninteractive
  run_logged "apt-get update" /tmp/lspilot-setup-apt-update.log apt-get -o DPkg::Lock::Timeout=600 update -q
  run_logged "apt-get install" /tmp/lspilot-setup-apt-install.log \
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
else
  log "  present"
fi
command -v node >/dev/null || die "node is missing: install Node.js 20"
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
[[ "$NODE_MAJOR" == 20 ]] || die "code-server 4.100.3 needs Node 20, found $(node --version)"

# ---------------------------------------------------------------------------------------------
log "2/3 extension: npm ci, compile, lint, package"
cd "$HERE"
stamp="$(sha package-lock.json)-$(node --version)"
if [[ -f node_modules/.lspilot-stamp && "$(cat node_modules/.lspilot-stamp)" == "$stamp" ]]; then
  log "  node_modules up to date"
else
  run_logged "npm ci (extension)" /tmp/lspilot-setup-npm-ext.log npm ci --no-audit --no-fund
  echo "$stamp" > node_modules/.lspilot-stamp
fi
npm run --silent compile
npm run --silent lint
rm -f lspilot.vsix
run_logged "vsce package" /tmp/lspilot-setup-vsce.log npx --no-install vsce package --allow-missing-repository --out lspilot.vsix
[[ -s lspilot.vsix ]] || die "vsce made no lspilot.vsix"
log "  built $HERE/lspilot.vsix ($(du -h lspilot.vsix | cut -f1))"

# ---------------------------------------------------------------------------------------------
log "3/3 code-server + playwright-core in $E2E_HOME"
mkdir -p "$(dirname "$E2E_HOME")"
# One install at a time (two checkouts may run this together); the second then finds it done.
exec 9>"$E2E_HOME.lock"
if ! flock -n 9; then
  log "  another setup is installing it; waiting (up to 15 min)"
  flock -w 900 9 || die "timed out waiting for $E2E_HOME.lock"
fi
stamp="$(sha "$E2E_SRC/package.json" "$E2E_SRC/package-lock.json")-$(node --version)"
if [[ -f "$E2E_HOME/.stamp" && "$(cat "$E2E_HOME/.stamp")" == "$stamp" && -x "$E2E_HOME/node_modules/.bin/code-server" ]]; then
  log "  up to date"
else
  rm -rf "$E2E_HOME"
  mkdir -p "$E2E_HOME/tmp"
  cp "$E2E_SRC/package.json" "$E2E_SRC/package-lock.json" "$E2E_HOME/"
  # @vscode/ripgrep's postinstall would download rg; it takes a tarball from its cache in $TMPDIR
  # first, so give it Debian's rg packed as the release asset it looks for.
  case "$(uname -m)" in
    x86_64) rg_target=x86_64-unknown-linux-musl ;;
    aarch64) rg_target=aarch64-unknown-linux-musl ;;
    *) die "unsupported machine $(uname -m)" ;;
  esac
  rg_cache="$E2E_HOME/tmp/vscode-ripgrep-cache-1.15.11"   # @vscode/ripgrep of code-server 4.100.3
  mkdir -p "$rg_cache/pack"
  cp "$(command -v rg)" "$rg_cache/pack/rg"
  tar -czf "$rg_cache/ripgrep-v13.0.0-10-$rg_target.tar.gz" -C "$rg_cache/pack" rg
  log "  npm ci code-server (builds native addons: 2-5 minutes)"
  (
    cd "$E2E_HOME"
    export TMPDIR="$E2E_HOME/tmp"
    export npm_config_nodedir=/usr               # node-gyp: Node 20's headers in /usr/include/node
    export npm_config_yes=true                   # node-pty's install runs npx node-gyp
    export npm_config_unsafe_perm=true           # code-server's postinstall as root
    # npm 11 skips dependencies' install scripts unless allowed; code-server's postinstall runs
    # nested npm installs (VS Code's native modules) that need theirs too.
    export npm_config_dangerously_allow_all_scripts=true
    run_logged "npm ci (code-server)" "$E2E_HOME/install.log" \
      npm ci --no-audit --no-fund --foreground-scripts
  )
  [[ -x "$E2E_HOME/node_modules/.bin/code-server" ]] || die "code-server did not install (see $E2E_HOME/install.log)"
  rm -rf "$E2E_HOME/tmp"
  echo "$stamp" > "$E2E_HOME/.stamp"
fi
log "  code-server $(XDG_CONFIG_HOME="$E2E_HOME/config" "$E2E_HOME/node_modules/.bin/code-server" --version 2>/dev/null | grep -m1 "with Code")"
log "done: LSPILOT_VSCODE_E2E_HOME=$E2E_HOME, vsix $HERE/lspilot.vsix"
