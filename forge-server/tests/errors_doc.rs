//! `docs/errors.md` is generated from the error catalogues of forge-core, forge-data,
//! forge-auth, forge-storage, forge-realtime and forge-server's control plane; this test fails when the file is out of date.
//!
//! Regenerate it with `FORGE_WRITE_DOCS=1 cargo test -p forge-server --test errors_doc`.

use std::fmt::Write as _;
use std::path::PathBuf;

use forge_core::error::Entry;
use forge_core::{ErrorCode, WireFormat};

const INTRO: &str = "\
# Errors

<!-- Generated from the error catalogues by forge-server/tests/errors_doc.rs; do not edit by hand.
     Regenerate: FORGE_WRITE_DOCS=1 cargo test -p forge-server --test errors_doc -->

Every Forge error is a row of one catalogue: forge-core's for what every service shares
(authentication, projects, the database, limits) and one per crate for its own. Each row has one
code and one status; where a Supabase server answers one code with several statuses, each
situation is a row of its own. forge-core renders every error, fed the row, in the shape its
service's clients expect:

- **PostgREST** (`/rest/v1`): `{code, message, details, hint}`, plus
  `Proxy-Status: PostgREST; error=<code>`, and `WWW-Authenticate` on 401.
- **GoTrue** (`/auth/v1`): `{code, error_code, msg, message}`, plus
  `X-Supabase-Api-Version: 2024-01-01` and `x-sb-error-code`. Both the versioned and the legacy
  client parsers read it. `weak_password` adds `weak_password: {reasons, message}`.
- **Storage** (`/storage/v1`): `{statusCode, code, error, message}`. Every 4xx is sent as HTTP
  400, except authentication failures (403) and 416, 429 and 431; the real status is in
  `statusCode`. A row-level security refusal is an ordinary 4xx there: HTTP 400 with
  `statusCode` \"403\" and `AccessDenied`, as Supabase Storage answers it. The vector routes
  (`/vector/*`) and resumable uploads (`/upload/resumable`, plain text with `Tus-Resumable`)
  send the real status, as Supabase's do; the analytics routes (`/iceberg/*`) use the Iceberg
  REST error model `{\"error\": {message, type, code}}` with the real status.
- **Realtime** (`/realtime/v1`): a refused WebSocket handshake is `{\"error\": message}`; the
  REST broadcast endpoints answer `{\"message\": message}`; a refused channel join is a `phx_reply`
  with status `error` and `{\"reason\": \"<code>: <message>\"}`, and a channel shut down gets a
  `system` message with the message before `phx_close`.
- **Forge's own endpoints** and the **Management API** (`/v1`): `{code, message}` (Supabase's
  Management API sends `message`).

A 5xx body never carries the cause (it is logged) nor the database's message.
";

fn shared() -> String {
    let mut out = String::from(
        "\n## Shared by every service (forge-core)\n\n\
         | Forge code | HTTP | PostgREST | GoTrue | Storage | default message |\n|---|---|---|---|---|---|\n",
    );
    for code in ErrorCode::ALL {
        let i = code.info();
        let status = if *code == ErrorCode::Database { "by SQLSTATE".to_owned() } else { i.status.to_string() };
        let postgrest = if i.postgrest.is_empty() { "the SQLSTATE" } else { i.postgrest };
        let storage = if *code == ErrorCode::Database { "by SQLSTATE" } else { i.storage };
        let _ = writeln!(out, "| `{}` | {status} | {postgrest} | {} | {storage} | {} |", i.code, i.gotrue, i.message);
    }
    out.push_str(
        "\nPostgres errors follow PostgREST's mapping on `/rest/v1` (for example 23505 and 23503 \
         give 409, 42501 gives 401 for anon and 403 otherwise, 22P02 gives 400, and 25006, a write \
         in a read-only GET, gives 405). The auth routes answer every database error with 500 \
         `unexpected_failure`. Storage names them by kind:\n\n\
         | SQLSTATE | kind | Storage code | statusCode |\n|---|---|---|---|\n",
    );
    for sqlstate in ["42501", "23505", "23503", "55P03", "57014", "25006", "22P02", "22021", "22P05", "XX000"] {
        let db = forge_core::DbError::new(sqlstate, "");
        let kind = db.kind();
        let problem = forge_core::ForgeError::Database(db).problem(WireFormat::Storage, true);
        let sqlstate = if sqlstate == "XX000" { "any other" } else { sqlstate };
        let _ = writeln!(out, "| {sqlstate} | {kind:?} | {} | {} |", problem.code, problem.status.as_u16());
    }
    out
}

fn catalogue(title: &str, status_header: &str, entries: impl Iterator<Item = Entry>) -> String {
    let mut out = format!("\n## {title}\n\n| code | {status_header} | when |\n|---|---|---|\n");
    for e in entries {
        let _ = writeln!(out, "| `{}` | {} | {} |", e.code, e.status, e.when);
    }
    out
}

fn generate() -> String {
    let mut doc = String::from(INTRO);
    doc.push_str(&shared());
    doc.push_str(&catalogue(
        "REST (forge-data, PostgREST's codes)",
        "HTTP",
        forge_data::ErrorKind::ALL.iter().map(|k| k.entry()),
    ));
    doc.push_str(&catalogue(
        "Auth (forge-auth, GoTrue's `error_code`)",
        "HTTP",
        forge_auth::ErrorKind::ALL.iter().map(|k| k.entry()),
    ));
    doc.push_str(
        "\nThe custom access token hook's refusal is sent with the hook's own 4xx `http_code`; a \
         custom `UserStore` refuses with a code of its own and 422 (`Error::store_refused`).\n",
    );
    doc.push_str(&catalogue(
        "Storage (forge-storage: Storage, S3 Vectors and Iceberg codes)",
        "statusCode",
        forge_storage::ErrorKind::ALL.iter().map(|k| k.entry()),
    ));
    doc.push_str(&catalogue(
        "Realtime (forge-realtime: handshake, REST and join refusals)",
        "HTTP",
        forge_realtime::ErrorKind::ALL.iter().map(|k| k.entry()),
    ));
    doc.push_str(&catalogue(
        "Management API (forge-server's control plane, `/v1`: `{code, message}`)",
        "HTTP",
        forge_server::platform::ErrorKind::ALL.iter().map(|k| k.entry()),
    ));
    doc
}

#[test]
fn docs_errors_md_is_generated_from_the_catalogues() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/errors.md");
    let generated = generate();
    if std::env::var_os("FORGE_WRITE_DOCS").is_some() {
        std::fs::write(&path, &generated).expect("write docs/errors.md");
        return;
    }
    let current = std::fs::read_to_string(&path).expect("read docs/errors.md");
    assert!(
        current == generated,
        "docs/errors.md is out of date: run FORGE_WRITE_DOCS=1 cargo test -p forge-server --test errors_doc"
    );
}

#[test]
fn every_code_of_every_catalogue_is_documented_once_per_situation() {
    let doc = generate();
    for kind in forge_auth::ErrorKind::ALL {
        let e = kind.entry();
        assert!(doc.contains(&format!("| `{}` | {} | {} |", e.code, e.status, e.when)), "{kind:?}");
    }
    for kind in forge_storage::ErrorKind::ALL {
        assert!(doc.contains(&format!("| `{}` |", kind.entry().code)), "{kind:?}");
    }
    for kind in forge_data::ErrorKind::ALL {
        assert!(doc.contains(&format!("| `{}` |", kind.entry().code)), "{kind:?}");
    }
    for kind in forge_realtime::ErrorKind::ALL {
        assert!(doc.contains(&format!("| `{}` |", kind.entry().code)), "{kind:?}");
    }
    for kind in forge_server::platform::ErrorKind::ALL {
        assert!(doc.contains(&format!("| `{}` |", kind.entry().code)), "{kind:?}");
    }
    // A code shared by two situations keeps both statuses, each with its situation.
    assert!(doc.contains("| `user_banned` | 403 |") && doc.contains("| `user_banned` | 400 |"));
}
