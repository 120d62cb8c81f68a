#!/usr/bin/env bash
# Client-compatibility suite: runs the official Supabase clients (supabase-js, supabase-py)
# against a freshly started forge-server and compares every answer with the same query in SQL.
# The auth suites also use a second forge-server that sends its auth mail over SMTP to a local
# sink (python/smtp_sink.py) and requires sign-up confirmation (FORGE_SMTP_* variables).
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
bash "$COMPAT_DIR/venv.sh"

# ---------------------------------------------------------------- servers
# Two forge-servers: the main one (every suite; mail kept in its local outbox) and a second one
# whose auth mail goes over SMTP to a local sink (aiosmtpd), with sign-up confirmation required.
TMP="$(mktemp -d "${TMPDIR:-/tmp}/forge-compat.XXXXXX")"
# the embedded Postgres runs as an unprivileged user that must be able to traverse the path
chmod 755 "$TMP"
DATA="$TMP/data"
SMTP_DATA="$TMP/data-smtp"
MAIL_DIR="$TMP/mail"
SERVER_PID=""
SMTP_SERVER_PID=""
SINK_PID=""

# stop_pid NAME PID: SIGTERM, up to 10 s of grace, then SIGKILL
stop_pid() {
  local name="$1" pid="$2"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name did not stop in 10 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  stop_pid forge-server "$SERVER_PID"
  stop_pid "forge-server (SMTP)" "$SMTP_SERVER_PID"
  stop_pid "SMTP sink" "$SINK_PID"
  if [ "$rc" -ne 0 ]; then
    local f
    for f in "$TMP/err.txt" "$TMP/smtp-err.txt" "$TMP/sink-err.txt"; do
      if [ -s "$f" ]; then
        log "last lines of $(basename "$f"):"
        tail -n 20 "$f" >&2 || true
      fi
    done
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

# wait_banner NAME PID OUT ERR: waits (60 s at most) until the server printed its keys
wait_banner() {
  local name="$1" pid="$2" out="$3" err="$4"
  for _ in $(seq 1 600); do
    grep -q '^  service key:' "$out" 2>/dev/null && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited before it was ready:"
      cat "$err" >&2
      exit 1
    fi
    sleep 0.1
  done
  log "$name: no banner after 60 s"
  cat "$err" >&2
  exit 1
}

# banner OUT LABEL: a value of the server's start-up banner
banner() { grep -m1 "^  $2:" "$1" | sed -E "s/^  $2: +//" | awk '{print $1}'; }

# The auth suites sign up many users from one address: lift the per-IP rate limits and the
# per-address mail frequency on the main server (the SMTP server keeps the defaults). Phone
# sign-in is on there, with texts kept in the server's SMS outbox.
PORT="$(free_port)"
log "starting forge-server on 127.0.0.1:$PORT (data dir $DATA)"
FORGE_DATA_DIR="$DATA" FORGE_LISTEN="127.0.0.1:$PORT" FORGE_REST_EXPLAIN=true \
  FORGE_DB_SCHEMAS="public,compat_api" \
  FORGE_AUTH_RATE_LIMITS__TOKEN_PER_5MIN=100000 \
  FORGE_AUTH_RATE_LIMITS__VERIFY_PER_5MIN=100000 \
  FORGE_AUTH_RATE_LIMITS__OTP_PER_5MIN=100000 \
  FORGE_AUTH_RATE_LIMITS__ANONYMOUS_PER_HOUR=100000 \
  FORGE_AUTH_RATE_LIMITS__MFA_PER_MINUTE=100000 \
  FORGE_AUTH_RATE_LIMITS__EMAIL_SENT_PER_HOUR=100000 \
  FORGE_AUTH_RATE_LIMITS__SMS_SENT_PER_HOUR=100000 \
  FORGE_AUTH_MAX_FREQUENCY=0 \
  FORGE_AUTH_PHONE_ENABLED=true \
  "$SERVER_BIN" >"$TMP/out.txt" 2>"$TMP/err.txt" &
SERVER_PID=$!

SINK_PORT="$(free_port)"
mkdir -p "$MAIL_DIR"
log "starting the SMTP sink on 127.0.0.1:$SINK_PORT (mail in $MAIL_DIR)"
"$VENV/bin/python" "$COMPAT_DIR/python/smtp_sink.py" --port "$SINK_PORT" --dir "$MAIL_DIR" >"$TMP/sink-out.txt" 2>"$TMP/sink-err.txt" &
SINK_PID=$!
for _ in $(seq 1 100); do
  grep -q '^ready' "$TMP/sink-out.txt" 2>/dev/null && break
  if ! kill -0 "$SINK_PID" 2>/dev/null; then
    log "the SMTP sink exited before it was ready:"
    cat "$TMP/sink-err.txt" >&2
    exit 1
  fi
  sleep 0.1
done
grep -q '^ready' "$TMP/sink-out.txt" || { log "the SMTP sink was not ready after 10 s"; cat "$TMP/sink-err.txt" >&2; exit 1; }

SMTP_PORT="$(free_port)"
FORGE_SMTP_SITE_URL="http://localhost:3000"
FORGE_SMTP_SENDER="Forge Compat <noreply@forge.test>"
log "starting forge-server (SMTP) on 127.0.0.1:$SMTP_PORT (data dir $SMTP_DATA)"
FORGE_DATA_DIR="$SMTP_DATA" FORGE_LISTEN="127.0.0.1:$SMTP_PORT" \
  FORGE_SMTP_HOST=127.0.0.1 FORGE_SMTP_PORT="$SINK_PORT" FORGE_SMTP_TLS=false FORGE_SMTP_FROM="$FORGE_SMTP_SENDER" \
  FORGE_AUTH_MAILER_AUTOCONFIRM=false \
  FORGE_AUTH_SITE_URL="$FORGE_SMTP_SITE_URL" \
  FORGE_AUTH_REDIRECT_URLS="[$FORGE_SMTP_SITE_URL/welcome/*]" \
  "$SERVER_BIN" >"$TMP/smtp-out.txt" 2>"$TMP/smtp-err.txt" &
SMTP_SERVER_PID=$!

wait_banner forge-server "$SERVER_PID" "$TMP/out.txt" "$TMP/err.txt"
wait_banner "forge-server (SMTP)" "$SMTP_SERVER_PID" "$TMP/smtp-out.txt" "$TMP/smtp-err.txt"

FORGE_URL="$(banner "$TMP/out.txt" 'API URL')"
FORGE_ANON_KEY="$(banner "$TMP/out.txt" 'anon key')"
FORGE_SERVICE_KEY="$(banner "$TMP/out.txt" 'service key')"
FORGE_JWT_SECRET_FILE="$DATA/jwt_secret"
FORGE_DB_SOCKET_DIR="$DATA/run"
export FORGE_URL FORGE_ANON_KEY FORGE_SERVICE_KEY FORGE_JWT_SECRET_FILE FORGE_DB_SOCKET_DIR
[ -n "$FORGE_URL" ] && [ -n "$FORGE_ANON_KEY" ] && [ -n "$FORGE_SERVICE_KEY" ] || { log "could not parse the banner"; cat "$TMP/out.txt" >&2; exit 1; }

FORGE_SMTP_URL="$(banner "$TMP/smtp-out.txt" 'API URL')"
FORGE_SMTP_ANON_KEY="$(banner "$TMP/smtp-out.txt" 'anon key')"
FORGE_SMTP_SERVICE_KEY="$(banner "$TMP/smtp-out.txt" 'service key')"
FORGE_SMTP_MAIL_DIR="$MAIL_DIR"
export FORGE_SMTP_URL FORGE_SMTP_ANON_KEY FORGE_SMTP_SERVICE_KEY FORGE_SMTP_MAIL_DIR FORGE_SMTP_SITE_URL FORGE_SMTP_SENDER
[ -n "$FORGE_SMTP_URL" ] && [ -n "$FORGE_SMTP_ANON_KEY" ] || { log "could not parse the SMTP server's banner"; cat "$TMP/smtp-out.txt" >&2; exit 1; }

log "applying schema.sql"
"$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$FORGE_DB_SOCKET_DIR" -U postgres -d postgres -f "$COMPAT_DIR/schema.sql"

# wait until the server's schema cache has the seeded tables and functions (DDL notifies it)
node -e '
const base = process.env.FORGE_URL + "/rest/v1/";
const probes = ["countries?select=id&limit=1", "w_books?select=id&limit=1", "auth_notes?select=id&limit=1", "rpc/add_ints?a=1"];
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

# ---------------------------------------------------------------- Management API clients
# The platform suites (js/platform.test.mjs, python/test_platform.py) drive the Management API
# through clients generated from the live document, with a personal access token for the
# server's first platform user (its owner), made by the CLI beside the running server.
FORGE_MANAGEMENT_DIR="$TMP/management"
log "generating the Management API clients from $FORGE_URL/openapi.json"
bash "$COMPAT_DIR/management-clients.sh" "$FORGE_URL/openapi.json" "$FORGE_MANAGEMENT_DIR"
FORGE_ACCESS_TOKEN="$(FORGE_DATA_DIR="$DATA" FORGE_LISTEN="127.0.0.1:0" "$SERVER_BIN" tokens create --email owner@forge.test --name compat)"
export FORGE_MANAGEMENT_DIR FORGE_ACCESS_TOKEN

# ---------------------------------------------------------------- suites
status=0
cd "$COMPAT_DIR/.."

log "running the supabase-js suite"
if ! node --test --test-concurrency=1 compat/js/; then
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
