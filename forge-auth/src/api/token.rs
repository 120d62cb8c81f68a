//! `POST /token` (the `password`, `refresh_token` and `pkce` grants) and `POST /logout`.

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use forge_core::Project;
use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::{Guarded, SessionUser, TokenGuard, normalize_email, parse_body};
use crate::crypto::{ChallengeMethod, sha256_hex};
use crate::error::{Error, ErrorKind, Result};
use crate::password::{self, Verified};
use crate::service::Auth;
use crate::session::{self, ClientInfo, LogoutScope, SessionExtras};
use crate::store::{Lookup, UserChange};

#[derive(Debug, Deserialize)]
pub(crate) struct TokenQuery {
    grant_type: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct PasswordGrant {
    email: Option<String>,
    phone: Option<String>,
    password: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct RefreshGrant {
    refresh_token: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct PkceGrant {
    auth_code: Option<String>,
    code_verifier: Option<String>,
}

pub(crate) async fn token(
    State(auth): State<Auth>,
    project: Project,
    client: ClientInfo,
    Query(q): Query<TokenQuery>,
    headers: http::HeaderMap,
    Guarded(body, _): Guarded<TokenGuard>,
) -> Result<Json<Value>> {
    let grant = q.grant_type.as_deref().unwrap_or_default();
    if matches!(grant, "password" | "id_token") {
        auth.check_captcha(&body, client.ip).await?;
    }
    let session = match q.grant_type.as_deref().unwrap_or_default() {
        "password" => password_grant(&auth, &project, &client, parse_body(&body)?).await?,
        "refresh_token" => {
            let body: RefreshGrant = parse_body(&body)?;
            let token = body
                .refresh_token
                .filter(|t| !t.is_empty())
                .ok_or_else(|| Error::validation("refresh_token required"))?;
            session::refresh(&auth, &project, &token, &client).await?
        }
        "pkce" => pkce_grant(&auth, &project, parse_body(&body)?).await?,
        "id_token" => super::external::id_token_grant(&auth, &project, &client, &headers, &body).await?,
        other => {
            return Err(Error::new(ErrorKind::InvalidCredentials, format!("unsupported_grant_type: {other}")));
        }
    };
    Ok(Json(session))
}

/// A hash that never matches, verified when the user is unknown so that unknown and known
/// users take the same time.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$5Y5hJcN2QG1b8c4tXc2YI4cUo0c5Q3xQ1kC8cQnq3vE";

async fn password_grant(auth: &Auth, project: &Project, client: &ClientInfo, body: PasswordGrant) -> Result<Value> {
    let password = body.password.unwrap_or_default();
    let pool = project.db().pool();
    let mut conn = pool.acquire().await?;
    let by_phone = body.email.as_deref().is_none_or(str::is_empty);
    let user = match (body.email.as_deref().filter(|e| !e.is_empty()), body.phone.as_deref().filter(|p| !p.is_empty()))
    {
        (Some(email), _) => {
            if !auth.config().email_enabled {
                return Err(Error::new(ErrorKind::EmailPasswordDisabled, "Email logins are disabled"));
            }
            match normalize_email(email) {
                Ok(e) => auth.store().find(&mut conn, Lookup::Email(&e)).await?,
                Err(_) => None,
            }
        }
        (None, Some(phone)) => {
            if !auth.config().phone_enabled {
                return Err(Error::new(ErrorKind::PhonePasswordDisabled, "Phone logins are disabled"));
            }
            match crate::users::normalize_phone(phone) {
                Ok(p) => auth.store().find(&mut conn, Lookup::Phone(&p)).await?,
                Err(_) => None,
            }
        }
        (None, None) => return Err(Error::invalid_credentials()),
    };
    let stored = user.as_ref().and_then(|u| u.encrypted_password.clone()).filter(|h| !h.is_empty());
    drop(conn);
    let check = {
        let stored = stored.clone().unwrap_or_else(|| DUMMY_HASH.to_owned());
        let password = password.clone();
        tokio::task::spawn_blocking(move || password::verify(&password, &stored)).await.map_err(Error::internal)??
    };
    let (user, rehash) = match (user, stored, check) {
        (Some(u), Some(_), Verified::Valid { rehash }) if !password.is_empty() => (u, rehash),
        _ => return Err(Error::invalid_credentials()),
    };
    if user.is_banned() {
        return Err(Error::new(ErrorKind::UserBannedAtSignIn, "User is banned"));
    }
    if by_phone {
        if user.phone_confirmed_at.is_none() {
            return Err(Error::new(ErrorKind::PhoneNotConfirmedAtSignIn, "Phone not confirmed"));
        }
    } else if user.email.is_some() && !user.email_confirmed() && user.phone_confirmed_at.is_none() {
        return Err(Error::new(ErrorKind::EmailNotConfirmedAtSignIn, "Email not confirmed"));
    }
    let mut tx = pool.begin().await?;
    if let Some(new_hash) = rehash {
        let change = UserChange { password_hash: Some(new_hash), ..UserChange::default() };
        auth.store().update(&mut tx, user.id, change).await?;
    }
    let issued = session::start(auth, &mut tx, &user, "password", client).await?;
    let weak = auth.config().password_policy().check(&password).err();
    session::respond(auth, project, tx, issued, SessionExtras { weak_password: weak, ..SessionExtras::default() }).await
}

#[derive(sqlx::FromRow)]
struct Flow {
    id: uuid::Uuid,
    user_id: Option<uuid::Uuid>,
    code_challenge_method: Option<String>,
    code_challenge: Option<String>,
    provider_access_token: Option<String>,
    provider_refresh_token: Option<String>,
    authentication_method: String,
    auth_code_issued_at: Option<time::OffsetDateTime>,
}

/// How long an auth code may wait to be exchanged.
const AUTH_CODE_TTL: time::Duration = time::Duration::minutes(5);

async fn pkce_grant(auth: &Auth, project: &Project, body: PkceGrant) -> Result<Value> {
    let (Some(code), Some(verifier)) =
        (body.auth_code.filter(|c| !c.is_empty()), body.code_verifier.filter(|v| !v.is_empty()))
    else {
        return Err(Error::validation("invalid request: both auth code and code verifier should be non-empty"));
    };
    let mut tx = project.db().pool().begin().await?;
    let flow: Flow = sqlx::query_as(
        "select id, user_id, code_challenge_method, code_challenge, provider_access_token, provider_refresh_token, \
         authentication_method, auth_code_issued_at from auth.flow_state where auth_code = $1 for update",
    )
    .bind(sha256_hex(code.as_bytes()))
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::new(ErrorKind::FlowStateNotFound, "invalid flow state, no valid flow state found"))?;
    // A code is single-use, matched or not.
    sqlx::query("delete from auth.flow_state where id = $1").bind(flow.id).execute(&mut *tx).await?;
    if flow.auth_code_issued_at.is_none_or(|t| t + AUTH_CODE_TTL < time::OffsetDateTime::now_utc()) {
        tx.commit().await?;
        return Err(Error::new(ErrorKind::FlowStateExpired, "invalid flow state, flow state has expired"));
    }
    let method = flow.code_challenge_method.as_deref().and_then(ChallengeMethod::parse);
    let ok = match (method, flow.code_challenge.as_deref()) {
        (Some(m), Some(challenge)) => m.verify(challenge, &verifier),
        _ => false,
    };
    if !ok {
        tx.commit().await?;
        return Err(Error::new(
            ErrorKind::BadCodeVerifier,
            "code challenge does not match previously saved code verifier",
        ));
    }
    let user_id = flow.user_id.ok_or_else(|| Error::new(ErrorKind::FlowStateNotFound, "invalid flow state"))?;
    // The code is spent whatever happens next.
    tx.commit().await?;
    let mut tx = project.db().pool().begin().await?;
    let user = auth.store().find(&mut tx, Lookup::Id(user_id)).await?.ok_or_else(Error::user_not_found)?;
    if user.is_banned() {
        return Err(Error::new(ErrorKind::UserBannedAtSignIn, "User is banned"));
    }
    let issued = session::start(auth, &mut tx, &user, &flow.authentication_method, &ClientInfo::default()).await?;
    let extras = SessionExtras {
        provider_token: flow.provider_access_token,
        provider_refresh_token: flow.provider_refresh_token,
        weak_password: None,
    };
    session::respond(auth, project, tx, issued, extras).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct LogoutQuery {
    scope: Option<String>,
}

pub(crate) async fn logout(session_user: SessionUser, Query(q): Query<LogoutQuery>) -> Result<Response> {
    let scope = match q.scope.as_deref().unwrap_or("global") {
        "global" => LogoutScope::Global,
        "local" => LogoutScope::Local,
        "others" => LogoutScope::Others,
        other => return Err(Error::validation(format!("Unsupported logout scope {other:?}"))),
    };
    let SessionUser { project, user, session_id, .. } = session_user;
    session::logout(project.db().pool(), user.id, session_id, scope).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
