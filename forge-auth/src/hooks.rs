//! Auth hooks: Postgres functions that take part in auth decisions, configured as in Supabase
//! with a `pg-functions://postgres/<schema>/<function>` URI.
//!
//! The custom access token hook gets `{user_id, claims, authentication_method}` and returns
//! `{claims}` (the claims to sign) or `{error: {http_code, message}}`. It runs in the
//! transaction of the sign-in or refresh (a refusal undoes it) as `supabase_auth_admin` (created by forge-auth's migrations, as in
//! Supabase, so the usual `grant execute ... to supabase_auth_admin` works) with a statement
//! timeout. The function is found in the catalog before it is called, and its answer is
//! checked against the claims every access token must carry.
//!
//! A hook is the project's own code and is trusted like a migration: the role keeps a
//! careless hook away from what it was not granted, but it is not a sandbox (a function can
//! reset the role, or change settings other than the role and timeout, which are restored).

use forge_core::error::DbErrorKind;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::error::{Error, ErrorKind, Result};

/// How long a hook may run.
const HOOK_TIMEOUT_MS: u32 = 2000;

/// A Postgres function named by `pg-functions://postgres/<schema>/<function>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PgFunction {
    schema: String,
    function: String,
}

fn plain_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 63
}

impl PgFunction {
    /// Parses a hook URI; only plain lower-case identifiers are accepted.
    pub(crate) fn parse(uri: &str) -> std::result::Result<Self, String> {
        let rest = uri.strip_prefix("pg-functions://").ok_or_else(|| {
            format!("hook {uri:?}: only pg-functions://postgres/<schema>/<function> hooks are supported")
        })?;
        match rest.split('/').collect::<Vec<_>>().as_slice() {
            [_database, schema, function] if plain_identifier(schema) && plain_identifier(function) => {
                Ok(Self { schema: (*schema).to_owned(), function: (*function).to_owned() })
            }
            _ => Err(format!("hook {uri:?}: expected pg-functions://postgres/<schema>/<function> with plain names")),
        }
    }
}

type ClaimCheck = fn(&Value) -> bool;

/// Claims an access token must keep whatever the hook does, with their JSON types.
const REQUIRED: &[(&str, ClaimCheck)] = &[
    ("aud", |v| v.is_string() || v.is_array()),
    ("exp", Value::is_i64),
    ("iat", Value::is_i64),
    ("sub", Value::is_string),
    ("role", Value::is_string),
    ("aal", Value::is_string),
    ("session_id", Value::is_string),
    ("is_anonymous", Value::is_boolean),
    ("email", Value::is_string),
    ("phone", Value::is_string),
];

/// Runs the custom access token hook and returns the claims to sign.
pub(crate) async fn custom_access_token(
    conn: &mut sqlx::PgConnection,
    hook: &PgFunction,
    user_id: Uuid,
    claims: Map<String, Value>,
    authentication_method: &str,
) -> Result<Map<String, Value>> {
    let input = json!({ "user_id": user_id, "claims": claims, "authentication_method": authentication_method });
    let output = call(conn, hook, &input).await?;
    if let Some(err) = output.get("error").filter(|e| !e.is_null()) {
        let status = err.get("http_code").and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok());
        let message = err.get("message").and_then(Value::as_str).unwrap_or("The hook refused the request");
        return Err(Error::hook_refused(status.unwrap_or(500), message.to_owned()));
    }
    let Some(Value::Object(out)) = output.get("claims").cloned() else {
        return Err(Error::internal("access token hook: the output has no claims object"));
    };
    for (name, valid) in REQUIRED {
        if !out.get(*name).is_some_and(valid) {
            return Err(Error::internal(format!("access token hook: claim {name} is missing or of the wrong type")));
        }
    }
    Ok(out)
}

/// Calls the hook inside the caller's transaction, as `supabase_auth_admin` with a statement
/// timeout, and puts the role and timeout back afterwards. An error aborts the transaction.
async fn call(conn: &mut sqlx::PgConnection, hook: &PgFunction, input: &Value) -> Result<Value> {
    let signature = format!("\"{}\".\"{}\"(jsonb)", hook.schema, hook.function);
    let known: Option<String> =
        sqlx::query_scalar("select to_regprocedure($1)::text").bind(&signature).fetch_one(&mut *conn).await?;
    if known.is_none() {
        return Err(Error::internal(format!("hook function {signature} does not exist")));
    }
    let (role, timeout): (String, String) = sqlx::query_as(
        "select current_setting('role'), current_setting('statement_timeout'), \
         set_config('role', 'supabase_auth_admin', true), set_config('statement_timeout', $1, true)",
    )
    .bind(HOOK_TIMEOUT_MS.to_string())
    .fetch_one(&mut *conn)
    .await
    .map(|(r, t, _, _): (String, String, String, String)| (r, t))?;
    // The name was checked to be plain identifiers and found in the catalog above.
    let sql = format!("select \"{}\".\"{}\"($1)", hook.schema, hook.function);
    let output: Option<Value> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(input).fetch_one(&mut *conn).await.map_err(|e| match &e {
            e if DbErrorKind::of_sqlx(e) == Some(DbErrorKind::QueryCanceled) => {
                Error::new(ErrorKind::HookTimeout, "Failed to reach hook within maximum time")
            }
            _ => {
                tracing::error!(error = %e, hook = %signature, "access token hook failed");
                Error::internal("the access token hook failed")
            }
        })?;
    sqlx::query("select set_config('role', $1, true), set_config('statement_timeout', $2, true)")
        .bind(role)
        .bind(timeout)
        .execute(&mut *conn)
        .await?;
    output.ok_or_else(|| Error::internal("access token hook: no output"))
}

#[cfg(test)]
mod tests {
    use super::PgFunction;

    #[test]
    fn hook_uris_name_plain_functions_only() {
        let f = PgFunction::parse("pg-functions://postgres/public/custom_access_token_hook").expect("ok");
        assert_eq!((f.schema.as_str(), f.function.as_str()), ("public", "custom_access_token_hook"));
        for bad in [
            "https://example.com/hook",
            "pg-functions://postgres/public",
            "pg-functions://postgres/public/x\"; drop table y; --",
            "pg-functions://postgres/Public/hook",
            "pg-functions://postgres/public/hook/extra",
        ] {
            assert!(PgFunction::parse(bad).is_err(), "{bad}");
        }
    }
}
