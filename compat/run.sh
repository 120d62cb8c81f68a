#!/usr/bin/env bash
# Client-compatibility suite: runs the official Supabase clients (supabase-js, supabase-py)
# against a freshly started forge-server and compares every answer with the same query in SQL.
#
#   bash compat/run.sh            # from any directory
#
# Needs: cargo, node (20+) + npm, python3 (3.9+) + venv, and the PostgreSQL server binaries.
# Environment knobs: FORGE_COMPAT_KEEP=1 keeps the temp dir (server logs) after the run.
set -euo pipefail

COMPAT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$COMPAT_DIR/.." && pwd)"

log() { printf '[compat] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- tools
find_psql() {
  if command -v psql >/dev/null 2>&1; then
    command -v psql
    return
  fi
  local p
  for p in $(ls -d /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V -r); do
    echo "$p"
    return
  done
  log "psql not found (install the PostgreSQL client/server packages)"
  exit 1
}
PSQL="$(find_psql)"

# ---------------------------------------------------------------- build and deps
log "building forge-server"
(cd "$ROOT" && cargo build -p forge-server)
SERVER_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/forge-server"
[ -x "$SERVER_BIN" ] || { log "missing $SERVER_BIN"; exit 1; }

if [ ! -d "$COMPAT_DIR/node_modules" ] || [ "$COMPAT_DIR/package-lock.json" -nt "$COMPAT_DIR/node_modules/.package-lock.json" ]; then
  log "installing npm dependencies"
  (cd "$COMPAT_DIR" && npm ci --no-audit --no-fund)
fi

VENV="$COMPAT_DIR/.venv"
REQS="$COMPAT_DIR/python/requirements.txt"
if [ ! -x "$VENV/bin/python" ] || ! cmp -s "$REQS" "$VENV/.requirements.installed"; then
  log "creating the Python venv"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS"
  cp "$REQS" "$VENV/.requirements.installed"
fi

# ---------------------------------------------------------------- server
TMP="$(mktemp -d "${TMPDIR:-/tmp}/forge-compat.XXXXXX")"
# the embedded Postgres runs as an unprivileged user that must be able to traverse the path
chmod 755 "$TMP"
DATA="$TMP/data"
SERVER_PID=""

cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    log "stopping forge-server (pid $SERVER_PID)"
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      log "forge-server did not stop in 10 s; killing it"
      kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ] && [ -s "$TMP/err.txt" ]; then
    log "last lines of the server's stderr:"
    tail -n 20 "$TMP/err.txt" >&2 || true
  fi
  if [ "${FORGE_COMPAT_KEEP:-0}" = "1" ]; then
    log "server logs kept in $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

PORT="$(free_port)"
log "starting forge-server on 127.0.0.1:$PORT (data dir $DATA)"
FORGE_DATA_DIR="$DATA" FORGE_LISTEN="127.0.0.1:$PORT" FORGE_REST_EXPLAIN=true "$SERVER_BIN" >"$TMP/out.txt" 2>"$TMP/err.txt" &
SERVER_PID=$!

for _ in $(seq 1 600); do
  grep -q '^  service key:' "$TMP/out.txt" 2>/dev/null && break
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "forge-server exited before it was ready:"
    cat "$TMP/err.txt" >&2
    exit 1
  fi
  sleep 0.1
done
grep -q '^  service key:' "$TMP/out.txt" || { log "no banner after 60 s"; cat "$TMP/err.txt" >&2; exit 1; }

banner() { grep -m1 "^  $1:" "$TMP/out.txt" | sed -E "s/^  $1: +//" | awk '{print $1}'; }
FORGE_URL="$(banner 'API URL')"
FORGE_ANON_KEY="$(banner 'anon key')"
FORGE_SERVICE_KEY="$(banner 'service key')"
FORGE_JWT_SECRET_FILE="$DATA/jwt_secret"
FORGE_DB_SOCKET_DIR="$DATA/run"
export FORGE_URL FORGE_ANON_KEY FORGE_SERVICE_KEY FORGE_JWT_SECRET_FILE FORGE_DB_SOCKET_DIR
[ -n "$FORGE_URL" ] && [ -n "$FORGE_ANON_KEY" ] && [ -n "$FORGE_SERVICE_KEY" ] || { log "could not parse the banner"; cat "$TMP/out.txt" >&2; exit 1; }

log "applying schema.sql"
"$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$FORGE_DB_SOCKET_DIR" -U postgres -d postgres -f "$COMPAT_DIR/schema.sql"

# wait until the server's schema cache has the seeded tables and functions (DDL notifies it)
node -e '
const base = process.env.FORGE_URL + "/rest/v1/";
const probes = ["countries?select=id&limit=1", "w_books?select=id&limit=1", "rpc/add_ints?a=1"];
const headers = { apikey: process.env.FORGE_ANON_KEY };
const deadline = Date.now() + 15000;
(async () => {
  for (;;) {
    try {
      const statuses = await Promise.all(probes.map(async (p) => (await fetch(base + p, { headers })).status));
      if (statuses.every((s) => s === 200)) return;
    } catch {}
    if (Date.now() > deadline) { console.error("[compat] the seeded tables and functions never appeared on /rest/v1"); process.exit(1); }
    await new Promise((r) => setTimeout(r, 100));
  }
})();
'

# ---------------------------------------------------------------- suites
status=0
cd "$COMPAT_DIR/.."

log "running the supabase-js suite"
if ! node --test compat/js/; then
  status=1
  log "supabase-js suite FAILED"
fi

log "running the supabase-py suite"
if ! "$VENV/bin/python" -m pytest -q compat/python; then
  status=1
  log "supabase-py suite FAILED"
fi

[ "$status" -eq 0 ] && log "all suites passed"
exit "$status"
