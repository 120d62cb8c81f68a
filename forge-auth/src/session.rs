//! Sessions, access tokens and refresh-token rotation.
//!
//! A session is a row of `auth.sessions`; each holds a chain of refresh tokens in
//! `auth.refresh_tokens`, stored as SHA-256 digests. Every refresh rotates the token. A
//! rotated token may be exchanged again within `refresh_token_reuse_interval` (another tab
//! refreshing at the same moment); that forks the chain and leaves its successor valid.
//! Presenting it later is treated as theft: the whole session is deleted.

use std::net::IpAddr;

use forge_core::Project;
use serde_json::{Map, Value, json};
use sqlx::{PgConnection, Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::crypto::{random_token, sha256_hex};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{User, user_json};
use crate::service::Auth;
use crate::store::{Lookup, UserChange};

/// Who is calling: for the session's diagnostics and for rate limits.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientInfo {
    pub(crate) ip: Option<IpAddr>,
    pub(crate) user_agent: Option<String>,
}

/// Extras returned with a session.
#[derive(Debug, Default)]
pub(crate) struct SessionExtras {
    pub(crate) provider_token: Option<String>,
    pub(crate) provider_refresh_token: Option<String>,
    pub(crate) weak_password: Option<crate::password::WeakPassword>,
}

/// Tokens issued for a session, before they are rendered.
#[derive(Debug)]
pub(crate) struct Issued {
    pub(crate) session_id: Uuid,
    pub(crate) user_id: Uuid,
    pub(crate) refresh_token: String,
}

/// Starts a session for `user` inside `tx`, recording `method` as its first AMR entry.
pub(crate) async fn start(
    auth: &Auth,
    tx: &mut Transaction<'_, Postgres>,
    user: &User,
    method: &str,
    client: &ClientInfo,
) -> Result<Issued> {
    let session_id = Uuid::new_v4();
    let ip = client.ip.map(|ip| ip.to_string());
    sqlx::query(
        "insert into auth.sessions (id, user_id, created_at, updated_at, aal, user_agent, ip) \
         values ($1, $2, now(), now(), 'aal1', $3, $4::inet)",
    )
    .bind(session_id)
    .bind(user.id)
    .bind(&client.user_agent)
    .bind(&ip)
    .execute(&mut **tx)
    .await?;
    add_amr(tx, session_id, method).await?;
    let refresh_token = new_refresh_token(tx, user.id, session_id, None).await?;
    auth.store().update(tx, user.id, UserChange { signed_in: true, ..UserChange::default() }).await?;
    Ok(Issued { session_id, user_id: user.id, refresh_token })
}

/// Records an authentication method on a session (the newest wins on conflict).
pub(crate) async fn add_amr(conn: &mut PgConnection, session_id: Uuid, method: &str) -> Result<()> {
    sqlx::query(
        "insert into auth.mfa_amr_claims (session_id, created_at, updated_at, authentication_method, id) \
         values ($1, now(), now(), $2, $3) \
         on conflict (session_id, authentication_method) do update set updated_at = now()",
    )
    .bind(session_id)
    .bind(method)
    .bind(Uuid::new_v4())
    .execute(conn)
    .await?;
    Ok(())
}

/// Creates a refresh token in `session_id`, as a child of `parent` (a digest).
pub(crate) async fn new_refresh_token(
    conn: &mut PgConnection,
    user_id: Uuid,
    session_id: Uuid,
    parent: Option<&str>,
) -> Result<String> {
    let token = random_token();
    sqlx::query(
        "insert into auth.refresh_tokens (token, user_id, revoked, created_at, updated_at, parent, session_id) \
         values ($1, $2, false, now(), now(), $3, $4)",
    )
    .bind(sha256_hex(token.as_bytes()))
    .bind(user_id.to_string())
    .bind(parent)
    .bind(session_id)
    .execute(conn)
    .await?;
    Ok(token)
}

/// Renders a session (mints the access token, running the access token hook, and loads the
/// user) and commits `tx`, the transaction that started or refreshed it: a hook that refuses
/// the token undoes the sign-in.
pub(crate) async fn respond(
    auth: &Auth,
    project: &Project,
    mut tx: Transaction<'static, Postgres>,
    issued: Issued,
    extras: SessionExtras,
) -> Result<Value> {
    let user = auth
        .store()
        .find(&mut tx, Lookup::Id(issued.user_id))
        .await?
        .ok_or_else(|| Error::internal("session user vanished"))?;
    let (aal, amr) = session_claims(&mut tx, issued.session_id).await?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let exp = now + i64::try_from(auth.config().jwt_exp).unwrap_or(3600);
    let method = amr.first().and_then(|a| a["method"].as_str()).unwrap_or("password").to_owned();
    let mut claims = access_claims(auth, project, &user, issued.session_id, &aal, amr, now, exp);
    if let Some(uri) = &auth.config().hooks.custom_access_token {
        let hook = crate::hooks::PgFunction::parse(uri).map_err(Error::internal)?;
        claims = crate::hooks::custom_access_token(&mut tx, &hook, user.id, claims, &method).await?;
        // A role no request may switch to would make a token no service accepts: the hook's bug.
        let role = claims.get("role").and_then(Value::as_str);
        project
            .keys()
            .verify_config()
            .check_role(role)
            .map_err(|e| Error::internal(format!("access token hook: {}", e.message)))?;
    }
    let user_json = user_json(auth, &mut tx, &user).await?;
    tx.commit().await?;
    let access_token = project.keys().sign(&claims)?;
    let mut body = json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": auth.config().jwt_exp,
        "expires_at": exp,
        "refresh_token": issued.refresh_token,
        "user": user_json,
    });
    if let Some(t) = extras.provider_token {
        body["provider_token"] = Value::String(t);
    }
    if let Some(t) = extras.provider_refresh_token {
        body["provider_refresh_token"] = Value::String(t);
    }
    if let Some(weak) = extras.weak_password {
        body["weak_password"] = json!({ "message": weak.message(), "reasons": weak.reasons });
    }
    Ok(body)
}

/// The session's AAL and its AMR entries, newest first.
async fn session_claims(conn: &mut PgConnection, session_id: Uuid) -> Result<(String, Vec<Value>)> {
    let aal: Option<String> = sqlx::query_scalar("select aal::text from auth.sessions where id = $1")
        .bind(session_id)
        .fetch_optional(&mut *conn)
        .await?
        .flatten();
    let rows: Vec<(String, OffsetDateTime)> = sqlx::query_as(
        "select authentication_method, updated_at from auth.mfa_amr_claims where session_id = $1 \
         order by updated_at desc",
    )
    .bind(session_id)
    .fetch_all(&mut *conn)
    .await?;
    let amr = rows.into_iter().map(|(m, t)| json!({ "method": m, "timestamp": t.unix_timestamp() })).collect();
    Ok((aal.unwrap_or_else(|| "aal1".into()), amr))
}

#[allow(clippy::too_many_arguments)]
fn access_claims(
    auth: &Auth,
    project: &Project,
    user: &User,
    session_id: Uuid,
    aal: &str,
    amr: Vec<Value>,
    iat: i64,
    exp: i64,
) -> Map<String, Value> {
    let claims = json!({
        "iss": auth.issuer(project),
        "sub": user.id,
        "aud": user.aud.clone().filter(|a| !a.is_empty()).unwrap_or_else(|| "authenticated".into()),
        "exp": exp,
        "iat": iat,
        "email": user.email.clone().unwrap_or_default(),
        "phone": user.phone.clone().unwrap_or_default(),
        "app_metadata": Value::Object(user.app_metadata()),
        "user_metadata": Value::Object(user.user_metadata()),
        "role": user.role(),
        "aal": aal,
        "amr": amr,
        "session_id": session_id,
        "is_anonymous": user.is_anonymous,
    });
    match claims {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    token: String,
    user_id: Option<String>,
    revoked: Option<bool>,
    updated_at: Option<OffsetDateTime>,
    session_id: Option<Uuid>,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    created_at: Option<OffsetDateTime>,
    refreshed_at: Option<time::PrimitiveDateTime>,
    not_after: Option<OffsetDateTime>,
}

/// Exchanges a refresh token for a new session response (the `refresh_token` grant).
pub(crate) async fn refresh(auth: &Auth, project: &Project, token: &str, client: &ClientInfo) -> Result<Value> {
    let config = auth.config();
    let digest = sha256_hex(token.as_bytes());
    let mut tx = project.db().pool().begin().await?;
    let row: Option<TokenRow> = sqlx::query_as(
        "select token, user_id, revoked, updated_at, session_id from auth.refresh_tokens where token = $1 for update",
    )
    .bind(&digest)
    .fetch_optional(&mut *tx)
    .await?;
    let not_found = || Error::new(ErrorKind::RefreshTokenNotFound, "Invalid Refresh Token: Refresh Token Not Found");
    let row = row.ok_or_else(not_found)?;
    let user_id: Uuid = row.user_id.as_deref().and_then(|u| u.parse().ok()).ok_or_else(not_found)?;
    let user = auth.store().find(&mut tx, Lookup::Id(user_id)).await?.ok_or_else(not_found)?;
    if user.is_banned() {
        return Err(Error::new(ErrorKind::UserBannedAtSignIn, "User is banned"));
    }
    let session_not_found =
        || Error::new(ErrorKind::SessionNotFoundOnRefresh, "Invalid Refresh Token: Session Not Found");
    let session_id = row.session_id.ok_or_else(session_not_found)?;
    let session: SessionRow =
        sqlx::query_as("select created_at, refreshed_at, not_after from auth.sessions where id = $1 for update")
            .bind(session_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(session_not_found)?;

    let now = OffsetDateTime::now_utc();
    let expired = session.not_after.is_some_and(|t| t <= now)
        || (config.session_timebox > 0
            && session.created_at.is_some_and(|c| c + time::Duration::seconds(secs(config.session_timebox)) <= now))
        || (config.session_inactivity_timeout > 0 && {
            let last = session.refreshed_at.map(|t| t.assume_utc()).or(session.created_at);
            last.is_some_and(|l| l + time::Duration::seconds(secs(config.session_inactivity_timeout)) <= now)
        });
    if expired {
        sqlx::query("delete from auth.sessions where id = $1").bind(session_id).execute(&mut *tx).await?;
        tx.commit().await?;
        return Err(Error::new(ErrorKind::SessionExpired, "Invalid Refresh Token: Session Expired"));
    }

    if row.revoked == Some(true) {
        let within = row
            .updated_at
            .is_some_and(|t| t + time::Duration::seconds(secs(config.refresh_token_reuse_interval)) >= now);
        if !within {
            // Reuse outside the window: someone else holds this chain. End the session.
            sqlx::query("delete from auth.sessions where id = $1").bind(session_id).execute(&mut *tx).await?;
            tx.commit().await?;
            tracing::warn!(%session_id, "refresh token reused after rotation; session revoked");
            return Err(Error::new(ErrorKind::RefreshTokenAlreadyUsed, "Invalid Refresh Token: Already Used"));
        }
    } else {
        sqlx::query("update auth.refresh_tokens set revoked = true, updated_at = now() where token = $1")
            .bind(&row.token)
            .execute(&mut *tx)
            .await?;
    }
    let refresh_token = new_refresh_token(&mut tx, user.id, session_id, Some(&row.token)).await?;
    sqlx::query(
        "update auth.sessions set refreshed_at = now() at time zone 'utc', updated_at = now(), \
         user_agent = coalesce($2, user_agent), ip = coalesce($3::inet, ip) where id = $1",
    )
    .bind(session_id)
    .bind(&client.user_agent)
    .bind(client.ip.map(|ip| ip.to_string()))
    .execute(&mut *tx)
    .await?;
    respond(auth, project, tx, Issued { session_id, user_id: user.id, refresh_token }, SessionExtras::default()).await
}

fn secs(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX / 2)
}

/// Which sessions a logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogoutScope {
    Global,
    Local,
    Others,
}

/// Ends sessions of `user_id` (their refresh tokens go with them).
pub(crate) async fn logout(
    pool: &sqlx::PgPool,
    user_id: Uuid,
    session_id: Option<Uuid>,
    scope: LogoutScope,
) -> Result<()> {
    match (scope, session_id) {
        (LogoutScope::Local, Some(s)) => {
            sqlx::query("delete from auth.sessions where id = $1 and user_id = $2")
                .bind(s)
                .bind(user_id)
                .execute(pool)
                .await?
        }
        (LogoutScope::Others, Some(s)) => {
            sqlx::query("delete from auth.sessions where user_id = $1 and id <> $2")
                .bind(user_id)
                .bind(s)
                .execute(pool)
                .await?
        }
        (LogoutScope::Others, None) => return Ok(()),
        (LogoutScope::Global | LogoutScope::Local, _) => {
            sqlx::query("delete from auth.sessions where user_id = $1").bind(user_id).execute(pool).await?
        }
    };
    Ok(())
}
