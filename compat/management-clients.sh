#!/usr/bin/env bash
# Generates the Management API clients the platform suites use from a live server's OpenAPI
# document, then type-checks the supabase-js platform suite against the generated types.
#
#   bash compat/management-clients.sh <URL of /openapi.json> <output dir>
#
# <output dir>/openapi.json                     the document, as served
# <output dir>/management-api.d.ts              openapi-typescript's types, for openapi-fetch
# <output dir>/tsconfig.json                    `tsc` settings: `forge-management-api` is those types
# <output dir>/python/forge_management_api/     openapi-python-client's package
#
# compat/run.sh calls it with the server it started; the suites find the clients through
# FORGE_MANAGEMENT_DIR. Needs compat/node_modules (npm ci) and compat/.venv (venv.sh).
set -euo pipefail
COMPAT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SPEC_URL="$1"
OUT="$2"
mkdir -p "$OUT"

python3 - "$SPEC_URL" "$OUT/openapi.json" <<'PY'
import sys
import urllib.request

with urllib.request.urlopen(sys.argv[1], timeout=30) as res, open(sys.argv[2], "wb") as out:
    out.write(res.read())
PY

# TypeScript: the types, and the platform suite checked against them (a path, a parameter or
# a body the document does not have fails here, before anything runs).
"$COMPAT_DIR/node_modules/.bin/openapi-typescript" "$OUT/openapi.json" --output "$OUT/management-api.d.ts" >&2
cat >"$OUT/tsconfig.json" <<JSON
{
  "compilerOptions": {
    "target": "es2022",
    "module": "nodenext",
    "moduleResolution": "nodenext",
    "allowJs": true,
    "checkJs": false,
    "noEmit": true,
    "strict": true,
    "skipLibCheck": true,
    "types": ["node"],
    "typeRoots": ["$COMPAT_DIR/node_modules/@types"],
    "paths": { "forge-management-api": ["./management-api.d.ts"] }
  },
  "files": ["$COMPAT_DIR/js/platform.test.mjs"]
}
JSON
"$COMPAT_DIR/node_modules/.bin/tsc" -p "$OUT/tsconfig.json"

# Python: a package, imported by compat/python/test_platform.py.
"$COMPAT_DIR/.venv/bin/openapi-python-client" generate \
  --path "$OUT/openapi.json" \
  --output-path "$OUT/python/forge_management_api" \
  --meta none \
  --config "$COMPAT_DIR/python/openapi-python-client.yaml" \
  --overwrite >&2
