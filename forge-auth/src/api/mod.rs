//! The HTTP API at `/auth/v1`: routes, and the extractors handlers share.

mod admin;
mod external;
mod factors;
mod meta;
mod otp;
mod phone;
mod signup;
mod token;
mod user;

use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts};
use axum::routing::{delete, get, post};
use forge_core::{Principal, Project};
use http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::{Error, ErrorKind, Result};
use crate::limit::Route;
use crate::model::User;
use crate::service::Auth;
use crate::session::ClientInfo;
use crate::store::Lookup;

pub(crate) fn router<S: Clone + Send + Sync + 'static>(auth: Auth) -> Router<S> {
    Router::new()
        .route("/signup", post(signup::signup))
        .route("/token", post(token::token))
        .route("/logout", post(token::logout))
        .route("/user", get(user::get_user).put(user::update_user))
        .route("/reauthenticate", get(user::reauthenticate))
        .route("/recover", post(otp::recover))
        .route("/otp", post(otp::otp))
        .route("/magiclink", post(otp::magiclink))
        .route("/resend", post(otp::resend))
        .route("/verify", get(otp::verify_get).post(otp::verify_post))
        .route("/factors", post(factors::enroll))
        .route("/factors/{id}", delete(factors::unenroll))
        .route("/factors/{id}/challenge", post(factors::challenge))
        .route("/factors/{id}/verify", post(factors::verify))
        .route("/invite", post(admin::invite))
        .route("/admin/users", get(admin::list_users).post(admin::create_user))
        .route("/admin/users/{id}", get(admin::get_user).put(admin::update_user).delete(admin::delete_user))
        .route("/admin/users/{id}/factors", get(admin::list_factors))
        .route("/admin/users/{id}/factors/{factor_id}", delete(admin::delete_factor).put(admin::update_factor))
        .route("/admin/generate_link", post(admin::generate_link))
        .route("/admin/outbox", get(admin::outbox))
        .route("/settings", get(meta::settings))
        .route("/health", get(meta::health))
        .route("/.well-known/jwks.json", get(meta::jwks))
        .route("/authorize", get(external::authorize))
        .route("/callback", get(external::callback).post(external::callback))
        .route("/user/identities/authorize", get(external::link))
        .route("/user/identities/{id}", delete(external::unlink))
        .fallback(meta::not_found)
        .layer(axum::middleware::from_fn_with_state(auth.clone(), with_auth))
        .layer(forge_core::error::RefusalLayer::new(forge_core::WireFormat::GoTrue))
        .with_state(auth)
}

/// What guards a route's body: its per-client rate limit and whether it takes a captcha.
pub(crate) trait Guard: Send + Sync + 'static {
    /// The rate limit, if the route has one.
    const LIMIT: Option<Route>;
    /// Whether the route checks the captcha token (when the project requires one).
    const CAPTCHA: bool;
}

macro_rules! guards {
    ($($(#[$doc:meta])* $name:ident: $limit:expr, $captcha:expr;)*) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) struct $name;

        impl Guard for $name {
            const LIMIT: Option<Route> = $limit;
            const CAPTCHA: bool = $captcha;
        }
    )*};
}

guards! {
    /// `/token` (the captcha only guards the password and ID-token grants, in the handler).
    TokenGuard: Some(Route::Token), false;
    /// `/signup` (its limit depends on the body: email, phone or anonymous).
    SignupGuard: None, true;
    /// `/recover`.
    RecoverGuard: Some(Route::Recover), true;
    /// `/otp`.
    OtpGuard: Some(Route::Otp), true;
    /// `/magiclink`.
    MagiclinkGuard: Some(Route::Magiclink), true;
    /// `/resend`.
    ResendGuard: Some(Route::Resend), true;
    /// `POST /verify` (a `GET /verify` link answers a refusal with a redirect, in the handler).
    VerifyGuard: Some(Route::Verify), false;
    /// `PUT /user`.
    UserUpdateGuard: Some(Route::UserUpdate), false;
    /// `/factors/{id}/challenge` and `/factors/{id}/verify`.
    MfaGuard: Some(Route::Mfa), false;
}

/// The body of a guarded route: read whole first (so a refused client gets its answer on a
/// connection it can reuse), then the route's per-client rate limit, then the captcha. As the
/// handler's last argument it runs after the session is checked, so an unauthenticated
/// request spends no one's budget.
pub(crate) struct Guarded<G>(pub(crate) Bytes, PhantomData<G>);

impl<G: Guard> FromRequest<Auth> for Guarded<G> {
    type Rejection = Error;

    async fn from_request(req: axum::extract::Request, auth: &Auth) -> Result<Self> {
        let (mut parts, body) = req.into_parts();
        let client = ClientInfo::from_request_parts(&mut parts, auth).await?;
        let bytes =
            Bytes::from_request(axum::extract::Request::from_parts(parts, body), auth).await.map_err(body_rejection)?;
        if let Some(route) = G::LIMIT {
            auth.0.limits.check(route, client.ip)?;
        }
        if G::CAPTCHA {
            auth.check_captcha(&bytes, client.ip).await?;
        }
        Ok(Guarded(bytes, PhantomData))
    }
}

impl<G> Guarded<G> {
    /// The body as JSON (see [`parse_body`]).
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T> {
        parse_body(&self.0)
    }
}

/// A JSON request body, in GoTrue's shape: an empty body is `{}` and one that does not parse
/// as `T` is 400 `bad_json`.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_rejection)?;
        Ok(JsonBody(parse_body(&bytes)?))
    }
}

/// A body that could not be read: over the limit (413), or cut off.
fn body_rejection(e: axum::extract::rejection::BytesRejection) -> Error {
    if e.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
        Error::Core(forge_core::ForgeError::PayloadTooLarge { limit: BODY_LIMIT })
    } else {
        Error::new(ErrorKind::BadJson, format!("Could not read the request body: {}", e.body_text()))
    }
}

/// The largest body the auth routes read (axum's default).
const BODY_LIMIT: u64 = 2 << 20;

/// Parses a JSON body, ignoring unknown keys; an empty body is `{}`.
pub(crate) fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    serde_json::from_slice(bytes)
        .map_err(|e| Error::new(ErrorKind::BadJson, format!("Could not parse request body as JSON: {e}")))
}

/// The client's address and user agent.
impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self> {
        let auth = parts.extensions.get::<Auth>().cloned();
        let header = auth.as_ref().and_then(|a| a.config().rate_limit_header.clone());
        let ip = match header {
            // A missing or unparsable value shares one bucket: leaving it out must not lift
            // the limits.
            Some(name) => Some(
                parts
                    .headers
                    .get(name.as_str())
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(',').next())
                    .and_then(|v| v.trim().parse::<IpAddr>().ok())
                    .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            ),
            None => parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()),
        };
        let user_agent = parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect());
        Ok(ClientInfo { ip, user_agent })
    }
}

/// The `Authorization: Bearer` token of a request, or 401 `no_authorization`.
fn bearer(headers: &http::HeaderMap) -> Result<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::new(ErrorKind::NoAuthorization, "This endpoint requires a valid Bearer token"))
}

/// A signed-in user: the bearer is a valid user JWT whose user and session still exist.
#[derive(Debug)]
pub(crate) struct SessionUser {
    pub(crate) project: Project,
    pub(crate) user: User,
    pub(crate) session_id: Option<Uuid>,
    pub(crate) aal: String,
}

impl FromRequestParts<Auth> for SessionUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Auth) -> Result<Self> {
        let project = Project::from_request_parts(parts, state).await.map_err(|r| Error::Core(r.error))?;
        SessionUser::from_headers(state, project, &parts.headers).await
    }
}

impl SessionUser {
    /// The signed-in user of a request with these headers.
    pub(crate) async fn from_headers(state: &Auth, project: Project, headers: &http::HeaderMap) -> Result<Self> {
        let token = bearer(headers)?;
        let claims = project.keys().verify_own_jwt(token).map_err(|e| {
            Error::new(ErrorKind::BadJwt, format!("invalid JWT: unable to parse or verify signature, {}", e.message))
        })?;
        let Some(sub) = claims.sub() else {
            return Err(Error::new(ErrorKind::BadJwt, "invalid claim: missing sub claim"));
        };
        let user_id: Uuid =
            sub.parse().map_err(|_| Error::new(ErrorKind::BadJwtSubject, "invalid claim: sub claim must be a UUID"))?;
        let pool = project.db().pool();
        let user =
            state.store().find(&mut *pool.acquire().await?, Lookup::Id(user_id)).await?.ok_or_else(|| {
                Error::new(ErrorKind::UserFromJwtNotFound, "User from sub claim in JWT does not exist")
            })?;
        let session_id = match claims.get("session_id").and_then(|v| v.as_str()) {
            None | Some("") => None,
            Some(s) => {
                let id: Uuid = s
                    .parse()
                    .map_err(|_| Error::new(ErrorKind::BadJwt, "invalid claim: session_id claim must be a UUID"))?;
                let exists: bool =
                    sqlx::query_scalar("select exists (select 1 from auth.sessions where id = $1 and user_id = $2)")
                        .bind(id)
                        .bind(user_id)
                        .fetch_one(pool)
                        .await?;
                if !exists {
                    return Err(Error::new(
                        ErrorKind::SessionNotFound,
                        "Session from session_id claim in JWT does not exist",
                    ));
                }
                Some(id)
            }
        };
        if user.is_banned() {
            return Err(Error::new(ErrorKind::UserBanned, "User is banned"));
        }
        let aal = claims.get("aal").and_then(|v| v.as_str()).unwrap_or("aal1").to_owned();
        Ok(SessionUser { project, user, session_id, aal })
    }
}

/// The service role: admin endpoints. Anyone else gets 403 `not_admin`.
#[derive(Debug)]
pub(crate) struct Admin(pub(crate) Project);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let project = Project::from_request_parts(parts, state).await.map_err(|r| Error::Core(r.error))?;
        bearer(&parts.headers)?;
        let apikey = parts.headers.get("apikey").map(|v| v.as_bytes());
        let authorization = parts.headers.get(http::header::AUTHORIZATION).map(|v| v.as_bytes());
        let principal = project.keys().authenticate(apikey, authorization).map_err(|e| {
            Error::new(ErrorKind::BadJwt, format!("invalid JWT: unable to parse or verify signature, {}", e.message))
        })?;
        match principal {
            Principal::Service(_) => Ok(Admin(project)),
            Principal::User(c) if c.role() == Some("supabase_admin") => Ok(Admin(project)),
            _ => Err(Error::not_admin()),
        }
    }
}

/// The `redirect_to` query parameter.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct RedirectQuery {
    pub(crate) redirect_to: Option<String>,
}

/// A lower-cased, checked email address.
pub(crate) fn normalize_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    if email.len() > 255 {
        return Err(Error::validation("An email address is too long"));
    }
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && domain.contains('.')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
                && !domain.contains('@')
        }
        None => false,
    };
    if valid {
        Ok(email)
    } else {
        Err(Error::new(ErrorKind::ValidationFailed, "Unable to validate email address: invalid format"))
    }
}

/// A browser redirect (`Location` checked to be a valid header value).
pub(crate) fn redirect(status: http::StatusCode, url: &str) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match http::HeaderValue::from_str(url) {
        Ok(v) => (status, [(http::header::LOCATION, v)]).into_response(),
        Err(_) => Error::internal("redirect URL is not a valid header value").into_response(),
    }
}

/// A browser redirect to `target` carrying an error as GoTrue does: `error`, `error_code` and
/// `error_description` in both the query and the fragment. `forbidden` replaces the
/// description of 403s; 5xx descriptions are generic.
pub(crate) fn redirect_error(
    status: http::StatusCode,
    target: &str,
    e: &Error,
    forbidden: Option<&str>,
    suffix: &str,
) -> axum::response::Response {
    let code = e.status().as_u16();
    let error = match code {
        401 => "unauthorized_client",
        403 => "access_denied",
        400..=499 => "invalid_request",
        503 => "temporarily_unavailable",
        _ => "server_error",
    };
    let description = match (code, forbidden) {
        (403, Some(message)) => message.to_owned(),
        (c, _) if c >= 500 => "Internal server error".to_owned(),
        _ => e.to_string(),
    };
    let params = format!(
        "error={error}&error_code={}&error_description={}{suffix}",
        e.code(),
        crate::links::encode(&description)
    );
    let sep = if target.contains('?') { '&' } else { '?' };
    redirect(status, &format!("{target}{sep}{params}#{params}"))
}

/// Extension: makes the [`Auth`] visible to extractors that need its settings.
pub(crate) async fn with_auth(
    axum::extract::State(auth): axum::extract::State<Auth>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    req.extensions_mut().insert(auth);
    next.run(req).await
}
