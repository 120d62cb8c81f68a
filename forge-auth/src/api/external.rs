//! External sign-in: `GET /authorize` and `GET|POST /callback` (the OAuth 2 authorization-code
//! flow, PKCE towards the provider, and implicit or PKCE towards the app), the `id_token`
//! grant, and manual linking (`GET /user/identities/authorize`, `DELETE /user/identities/{id}`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use forge_core::Project;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::{FromRow as _, Row as _};
use uuid::Uuid;

use super::{SessionUser, parse_body, redirect, redirect_error};
use crate::crypto::{random_token, sha256_hex};
use crate::error::{Error, ErrorKind, Result};
use crate::links::{encode, pkce_params};
use crate::model::{TokenColumn, User};
use crate::provider::{AuthorizeParams, IdentityProvider, ProviderUser};
use crate::service::Auth;
use crate::session::{self, ClientInfo, SessionExtras};
use crate::store::{Lookup, NewIdentity, NewUser, UserChange};

/// How long a browser may take at the provider.
const FLOW_TTL_MINUTES: i32 = 10;

fn provider(auth: &Auth, name: &str) -> Result<std::sync::Arc<dyn IdentityProvider>> {
    auth.0
        .providers
        .get(name)
        .cloned()
        .ok_or_else(|| Error::validation(format!("Unsupported provider: provider {name} could not be found")))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct AuthorizeQuery {
    provider: Option<String>,
    redirect_to: Option<String>,
    scopes: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    skip_http_redirect: Option<String>,
}

pub(crate) async fn authorize(
    State(auth): State<Auth>,
    project: Project,
    Query(q): Query<AuthorizeQuery>,
) -> Result<Response> {
    start_flow(&auth, &project, q, None).await
}

/// Manual linking is on: the guard of `/user/identities/*`, after the session is checked (GoTrue's
/// `requireManualLinkingEnabled` runs inside `requireAuthentication`), else 404
/// `manual_linking_disabled`.
#[derive(Debug)]
pub(crate) struct ManualLinking;

impl axum::extract::FromRequestParts<Auth> for ManualLinking {
    type Rejection = Error;

    async fn from_request_parts(_parts: &mut http::request::Parts, auth: &Auth) -> Result<Self> {
        if auth.config().manual_linking_enabled {
            Ok(ManualLinking)
        } else {
            Err(Error::new(ErrorKind::ManualLinkingDisabled, "Manual linking is disabled"))
        }
    }
}

/// `GET /user/identities/authorize`: links another provider's identity to the signed-in user
/// (`linkIdentity`). Anonymous users may link too: that is how they become permanent.
pub(crate) async fn link(
    State(auth): State<Auth>,
    session: SessionUser,
    _enabled: ManualLinking,
    Query(q): Query<AuthorizeQuery>,
) -> Result<Response> {
    let project = session.project.clone();
    start_flow(&auth, &project, q, Some(session.user.id)).await
}

async fn start_flow(auth: &Auth, project: &Project, q: AuthorizeQuery, link_user: Option<Uuid>) -> Result<Response> {
    let name = q
        .provider
        .as_deref()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| Error::validation("Unsupported provider: missing provider"))?;
    let provider = provider(auth, name)?;
    let pkce = pkce_params(q.code_challenge.as_deref(), q.code_challenge_method.as_deref())?;
    let redirect_to = auth.redirect_target(project, q.redirect_to.as_deref());
    // Flows nobody finished are dropped after a day, so the table cannot grow without bound.
    sqlx::query("delete from auth.flow_state where created_at < now() - interval '1 day'")
        .execute(project.db().pool())
        .await?;
    let flow_id = Uuid::new_v4();
    let verifier = random_token();
    let nonce = random_token();
    sqlx::query(
        "insert into auth.flow_state (id, code_challenge_method, code_challenge, provider_type, authentication_method, \
         redirect_to, provider_verifier, provider_nonce, link_user_id) values ($1, $2, $3, $4, 'oauth', $5, $6, $7, $8)",
    )
    .bind(flow_id)
    .bind(pkce.as_ref().map(|(m, _)| m.as_str()))
    .bind(pkce.as_ref().map(|(_, c)| c.as_str()))
    .bind(name)
    .bind(&redirect_to)
    .bind(&verifier)
    .bind(&nonce)
    .bind(link_user)
    .execute(project.db().pool())
    .await?;
    let scopes: Vec<String> =
        q.scopes.unwrap_or_default().split([' ', ',']).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    let callback = format!("{}/callback", auth.issuer(project));
    let state = flow_id.to_string();
    let params = AuthorizeParams {
        state: &state,
        redirect_uri: &callback,
        pkce_verifier: &verifier,
        nonce: &nonce,
        scopes: &scopes,
    };
    let url = provider.authorize_url(&params).await.map_err(Error::internal)?;
    if q.skip_http_redirect.as_deref() == Some("true") {
        return Ok(Json(json!({ "url": url })).into_response());
    }
    Ok(found(&url))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Flow {
    id: Uuid,
    provider_type: String,
    code_challenge_method: Option<String>,
    code_challenge: Option<String>,
    redirect_to: Option<String>,
    provider_verifier: Option<String>,
    provider_nonce: Option<String>,
    link_user_id: Option<Uuid>,
}

/// The provider sends the browser back here (query, or a form body for `form_post`).
pub(crate) async fn callback(
    State(auth): State<Auth>,
    project: Project,
    client: ClientInfo,
    Query(query): Query<CallbackParams>,
    body: Bytes,
) -> Response {
    let params = if query.state.is_none() && !body.is_empty() { serde_urlencoded_params(&body) } else { query };
    let flow = match load_flow(&project, params.state.as_deref()).await {
        Ok(f) => f,
        Err(e) => return error_redirect(&auth.site_url(&project), &e),
    };
    let target = auth.redirect_target(&project, flow.redirect_to.as_deref());
    match finish(&auth, &project, &client, flow, params).await {
        Ok(landing) => found(&landing.into_url(&target)),
        Err(e) => error_redirect(&target, &e),
    }
}

fn serde_urlencoded_params(body: &[u8]) -> CallbackParams {
    let mut p = CallbackParams::default();
    for (k, v) in form_urlencoded::parse(body) {
        let v = Some(v.into_owned());
        match k.as_ref() {
            "code" => p.code = v,
            "state" => p.state = v,
            "error" => p.error = v,
            "error_description" => p.error_description = v,
            _ => {}
        }
    }
    p
}

async fn load_flow(project: &Project, state: Option<&str>) -> Result<Flow> {
    let bad_state = || Error::new(ErrorKind::BadOauthState, "OAuth state parameter missing or invalid");
    let id: Uuid = state.and_then(|s| s.parse().ok()).ok_or_else(bad_state)?;
    // Taking the row out makes the state single-use.
    let sql = "delete from auth.flow_state where id = $1 and authentication_method = 'oauth' and user_id is null \
               and auth_code is null returning id, provider_type, code_challenge_method, code_challenge, redirect_to, \
               provider_verifier, provider_nonce, link_user_id, created_at > now() - make_interval(mins => $2) as fresh";
    let row: Option<(Flow, bool)> = sqlx::query(sql)
        .bind(id)
        .bind(FLOW_TTL_MINUTES)
        .fetch_optional(project.db().pool())
        .await?
        .map(|r| Ok::<_, sqlx::Error>((Flow::from_row(&r)?, r.try_get("fresh")?)))
        .transpose()?;
    let (flow, fresh) = row.ok_or_else(bad_state)?;
    if !fresh {
        return Err(Error::new(ErrorKind::OauthClientStateExpired, "OAuth state has expired"));
    }
    Ok(flow)
}

enum Landing {
    Code(String),
    Session(Value),
}

impl Landing {
    fn into_url(self, target: &str) -> String {
        match self {
            Landing::Code(code) => {
                let sep = if target.contains('?') { '&' } else { '?' };
                format!("{target}{sep}code={}", encode(&code))
            }
            Landing::Session(s) => {
                let mut fragment = format!(
                    "access_token={}&expires_at={}&expires_in={}",
                    s["access_token"].as_str().unwrap_or_default(),
                    s["expires_at"],
                    s["expires_in"]
                );
                if let Some(t) = s["provider_token"].as_str() {
                    fragment.push_str(&format!("&provider_token={}", encode(t)));
                }
                if let Some(t) = s["provider_refresh_token"].as_str() {
                    fragment.push_str(&format!("&provider_refresh_token={}", encode(t)));
                }
                fragment.push_str(&format!(
                    "&refresh_token={}&token_type=bearer",
                    s["refresh_token"].as_str().unwrap_or_default()
                ));
                format!("{target}#{fragment}")
            }
        }
    }
}

async fn finish(
    auth: &Auth,
    project: &Project,
    client: &ClientInfo,
    flow: Flow,
    params: CallbackParams,
) -> Result<Landing> {
    if let Some(error) = params.error {
        let description = params.error_description.unwrap_or_default();
        return Err(Error::new(ErrorKind::BadOauthCallback, format!("{error}: {description}")));
    }
    let code = params
        .code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::new(ErrorKind::BadOauthCallback, "OAuth callback with missing authorization code"))?;
    let provider = provider(auth, &flow.provider_type)?;
    let callback = format!("{}/callback", auth.issuer(project));
    let verifier = flow.provider_verifier.clone().unwrap_or_default();
    let nonce = flow.provider_nonce.clone().unwrap_or_default();
    let external = provider.exchange(&code, &verifier, &callback, &nonce).await.map_err(|e| {
        Error::new(ErrorKind::BadOauthCallback, format!("Error getting user profile from external provider: {e}"))
    })?;
    let provider_token = external.access_token.clone();
    let provider_refresh = external.refresh_token.clone();
    let mut tx = project.db().pool().begin().await?;
    let user = match flow.link_user_id {
        Some(user_id) => link_identity(auth, &mut tx, user_id, &flow.provider_type, external).await?,
        None => resolve_user(auth, &mut tx, &flow.provider_type, external).await?,
    };
    if flow.code_challenge.is_some() {
        // PKCE towards the app: put the flow back with an auth code the app exchanges.
        let code = random_token();
        sqlx::query(
            "insert into auth.flow_state (id, user_id, auth_code, provider_type, provider_access_token, \
             provider_refresh_token, code_challenge_method, code_challenge, authentication_method, auth_code_issued_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, 'oauth', now())",
        )
        .bind(flow.id)
        .bind(user.id)
        .bind(sha256_hex(code.as_bytes()))
        .bind(&flow.provider_type)
        .bind(&provider_token)
        .bind(&provider_refresh)
        .bind(&flow.code_challenge_method)
        .bind(&flow.code_challenge)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(Landing::Code(code));
    }
    let issued = session::start(auth, &mut tx, &user, "oauth", client).await?;
    let extras = SessionExtras { provider_token, provider_refresh_token: provider_refresh, weak_password: None };
    Ok(Landing::Session(session::respond(auth, project, tx, issued, extras).await?))
}

/// Links an external identity to `user_id`, unless it already belongs to someone else.
async fn link_identity(
    auth: &Auth,
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    user_id: Uuid,
    provider: &str,
    external: ProviderUser,
) -> Result<User> {
    let store = auth.store();
    let owner = store.identity_owner(tx, provider, &external.subject).await?;
    if owner.is_some_and(|o| o != user_id) {
        return Err(Error::new(ErrorKind::IdentityAlreadyExists, "Identity is already linked to another user"));
    }
    let identity = NewIdentity {
        provider: provider.to_owned(),
        provider_id: external.subject,
        data: Value::Object(external.data),
    };
    store.link(tx, user_id, identity).await?;
    // A user without an email (e.g. anonymous) takes the provider's verified one, unless
    // someone else has it; linking makes an anonymous user permanent.
    let user = store.find(tx, Lookup::Locked(user_id)).await?.ok_or_else(Error::user_not_found)?;
    let mut change = UserChange { anonymous: Some(false), ..UserChange::default() };
    if let Some(email) = external.email.filter(|_| external.email_verified)
        && user.email.as_deref().is_none_or(str::is_empty)
        && store.find(tx, Lookup::Email(&email)).await?.is_none()
    {
        change.email = Some(Some(email));
        change.email_confirmed = Some(true);
    }
    let user = store.update(tx, user_id, change).await?;
    if user.is_banned() {
        return Err(Error::new(ErrorKind::UserBanned, "User is banned"));
    }
    Ok(user)
}

/// Finds the user for an external identity: by the identity, else by a verified email
/// (linking the identity), else a new user.
async fn resolve_user(
    auth: &Auth,
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    provider: &str,
    external: ProviderUser,
) -> Result<User> {
    let ProviderUser { subject, email, email_verified, data, .. } = external;
    let data = Value::Object(data);
    let store = auth.store();
    let identity = NewIdentity { provider: provider.to_owned(), provider_id: subject, data: data.clone() };
    let existing = store.identity_owner(tx, provider, &identity.provider_id).await?;
    let user = match existing {
        Some(id) => {
            store.link(tx, id, identity).await?;
            store.find(tx, Lookup::Id(id)).await?.ok_or_else(|| Error::internal("identity without user"))?
        }
        None => {
            let by_email = match &email {
                Some(e) => store.find(tx, Lookup::Email(e)).await?,
                None => None,
            };
            match by_email {
                Some(u) if email_verified => {
                    if !u.email_confirmed() {
                        // Nobody proved they own this unconfirmed account; the provider just
                        // proved the address is this person's. Whatever was set up without
                        // proof (a password, other identities, metadata) goes, so a
                        // pre-registered account cannot be taken over (GoTrue's
                        // RemoveUnconfirmedIdentities).
                        store.unlink(tx, u.id, None).await?;
                        let metadata = match &data {
                            Value::Object(m) => m.clone(),
                            _ => serde_json::Map::new(),
                        };
                        let change = UserChange {
                            password_hash: Some(String::new()),
                            user_metadata: Some(metadata),
                            email_change: Some(String::new()),
                            email_confirmed: Some(true),
                            ..UserChange::default()
                        }
                        .token(TokenColumn::Confirmation, "")
                        .token(TokenColumn::Recovery, "")
                        .token(TokenColumn::EmailChangeNew, "");
                        store.update(tx, u.id, change).await?;
                        sqlx::query("delete from auth.sessions where user_id = $1")
                            .bind(u.id)
                            .execute(&mut **tx)
                            .await?;
                    }
                    store.link(tx, u.id, identity).await?;
                    store.find(tx, Lookup::Id(u.id)).await?.ok_or_else(|| Error::internal("user vanished"))?
                }
                Some(_) => {
                    return Err(Error::new(
                        ErrorKind::ProviderEmailNeedsVerification,
                        "Unverified email with the provider: verify it there before signing in",
                    ));
                }
                None => {
                    if auth.config().disable_signup {
                        return Err(Error::new(ErrorKind::SignupDisabled, "Signups not allowed for this instance"));
                    }
                    let metadata = match &data {
                        Value::Object(m) => m.clone(),
                        _ => serde_json::Map::new(),
                    };
                    let new = NewUser {
                        email,
                        email_confirmed: email_verified,
                        user_metadata: metadata,
                        identity: Some(identity),
                        ..NewUser::default()
                    };
                    store.create(tx, new).await?
                }
            }
        }
    };
    if user.is_banned() {
        return Err(Error::new(ErrorKind::UserBanned, "User is banned"));
    }
    Ok(user)
}

fn error_redirect(target: &str, e: &Error) -> Response {
    redirect_error(http::StatusCode::FOUND, target, e, None, "")
}

/// 302 Found, as GoTrue answers browser hops.
fn found(url: &str) -> Response {
    redirect(http::StatusCode::FOUND, url)
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct IdTokenGrant {
    provider: Option<String>,
    id_token: Option<String>,
    nonce: Option<String>,
    link_identity: bool,
}

/// `grant_type=id_token`: a provider's ID token obtained by the client (native sign-in). With
/// `link_identity: true` and a signed-in user's bearer token, the identity is linked to that
/// user instead (`linkIdentity` with an ID token).
pub(crate) async fn id_token_grant(
    auth: &Auth,
    project: &Project,
    client: &ClientInfo,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<Value> {
    let body: IdTokenGrant = parse_body(body)?;
    // Who links is settled before the provider's token is looked at.
    let linking = if body.link_identity {
        Some(SessionUser::from_headers(auth, project.clone(), headers).await?.user.id)
    } else {
        None
    };
    let name = body
        .provider
        .as_deref()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| Error::validation("provider or client_id and issuer required"))?;
    let id_token =
        body.id_token.as_deref().filter(|t| !t.is_empty()).ok_or_else(|| Error::validation("id_token required"))?;
    let provider = auth.0.providers.get(name).cloned().ok_or_else(|| {
        Error::new(ErrorKind::ProviderDisabled, format!("Custom OIDC provider \"{name}\" not allowed"))
    })?;
    let external = provider
        .verify_id_token(id_token, body.nonce.as_deref().filter(|n| !n.is_empty()))
        .await
        .map_err(|e| Error::validation(format!("Bad ID token: {e}")))?;
    let mut tx = project.db().pool().begin().await?;
    let user = match linking {
        Some(user_id) => link_identity(auth, &mut tx, user_id, name, external).await?,
        None => resolve_user(auth, &mut tx, name, external).await?,
    };
    let issued = session::start(auth, &mut tx, &user, "oauth", client).await?;
    session::respond(auth, project, tx, issued, SessionExtras::default()).await
}

/// `DELETE /user/identities/{id}`: unlinks an identity; the last one cannot go.
pub(crate) async fn unlink(
    State(auth): State<Auth>,
    session: SessionUser,
    _enabled: ManualLinking,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let SessionUser { project, user, .. } = session;
    let not_found = || Error::new(ErrorKind::IdentityNotFound, "Identity doesn't exist");
    let id: Uuid = id.parse().map_err(|_| not_found())?;
    let mut tx = project.db().pool().begin().await?;
    let identities = auth.store().identities(&mut tx, user.id).await?;
    let identity = identities.iter().find(|i| i.id == id).ok_or_else(not_found)?;
    if identities.len() <= 1 {
        return Err(Error::new(
            ErrorKind::SingleIdentityNotDeletable,
            "User must have at least 1 identity after unlinking",
        ));
    }
    auth.store().unlink(&mut tx, user.id, Some(identity.id)).await?;
    tx.commit().await?;
    Ok(Json(json!({})))
}
