//! Rendering errors in each service's wire shape.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};

use super::{DbErrorKind, ErrorCode, ForgeError};

/// The error body shape a service speaks, as described in SUPABASE-WIRE.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireFormat {
    /// PostgREST: `{code, message, details, hint}` plus `Proxy-Status`.
    PostgRest,
    /// GoTrue: `{code, error_code, msg, message}` plus `X-Supabase-Api-Version`, readable by
    /// both the versioned and the legacy client parsers.
    GoTrue,
    /// Supabase Storage: `{statusCode, code, error, message}`, 4xx folded into HTTP 400.
    Storage,
    /// Storage's body with the real HTTP status, as the vector routes answer.
    StorageVectors,
    /// The Iceberg REST error model of the analytics routes: `{"error": {message, type, code}}`
    /// with the real status.
    Iceberg,
    /// TUS resumable uploads: the message as plain text with the real status and
    /// `Tus-Resumable`.
    Tus,
    /// Supabase Realtime's REST endpoints (`/realtime/v1/api/*`): `{"message": ...}`.
    Realtime,
    /// Supabase Realtime's refused WebSocket handshake: `{"error": ...}`.
    RealtimeSocket,
    /// Forge's own endpoints: `{code, message}`.
    Plain,
}

impl WireFormat {
    /// The format a service mounted under `path` speaks, judged by its Supabase prefix.
    ///
    /// Used where no service has said (for example for an unknown project, answered before any
    /// service sees the request).
    pub fn for_path(path: &str) -> Self {
        let path = path.trim_start_matches('/');
        let service = path.split('/').next().unwrap_or("");
        match service {
            "rest" | "graphql" => WireFormat::PostgRest,
            "auth" => WireFormat::GoTrue,
            "storage" => WireFormat::Storage,
            "realtime" => WireFormat::Realtime,
            _ => WireFormat::Plain,
        }
    }

    /// The format for a request: an explicit `WireFormat` extension set by the service's
    /// router wins, otherwise it is judged by the path the client sent (before any
    /// `Router::nest` stripped the service prefix).
    pub fn for_request(parts: &http::request::Parts) -> Self {
        if let Some(format) = parts.extensions.get::<WireFormat>() {
            return *format;
        }
        let path = match parts.extensions.get::<axum::extract::OriginalUri>() {
            Some(original) => original.0.path(),
            None => parts.uri.path(),
        };
        WireFormat::for_path(path)
    }
}

/// The HTTP status PostgREST gives a SQLSTATE (SERVER-BEHAVIOUR.md §1b; first match wins).
pub fn sqlstate_status(code: &str, message: &str, authenticated: bool) -> StatusCode {
    let status = match code {
        c if c.starts_with("08") => 503,
        c if c.starts_with("09") => 500,
        c if c.starts_with("0L") || c.starts_with("0P") => 403,
        "23503" | "23505" => 409,
        "25006" => 405,
        "21000" if message.ends_with("requires a WHERE clause") => 400,
        "21000" => 500,
        "22023" if message.starts_with("role ") && message.ends_with("does not exist") => 401,
        c if ["25", "2D", "38", "39", "3B"].iter().any(|p| c.starts_with(p)) => 500,
        c if c.starts_with("28") => 403,
        c if c.starts_with("40") => 500,
        "53400" => 500,
        c if c.starts_with("53") => 503,
        c if c.starts_with("54") || c.starts_with("55") => 500,
        "57P01" => 503,
        c if c.starts_with("57") || c.starts_with("58") => 500,
        c if c.starts_with("F0") || c.starts_with("HV") || c.starts_with("XX") => 500,
        "P0001" => 400,
        c if c.starts_with("P0") => 500,
        "42883" if message.starts_with("function xmlagg(") => 406,
        "42883" | "42P01" => 404,
        "42P17" => 500,
        "42501" if authenticated => 403,
        "42501" => 401,
        c if c.len() == 5 && c.starts_with("PT") => {
            c[2..].parse::<u16>().ok().filter(|s| (100..600).contains(s)).unwrap_or(500)
        }
        _ => 400,
    };
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A neutral description of an error: what the renderer of a wire shape turns into a response.
///
/// Every crate describes its own errors as a `Problem` and hands it to [`WireFormat::render`];
/// no crate builds an error body by hand. `status` is the real status; a shape may send
/// another on the wire (Storage folds 4xx into 400) while keeping the real one in the body.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Problem {
    /// The real HTTP status.
    pub status: StatusCode,
    /// The service's code (`PGRST116`, `user_banned`, `NoSuchKey`, a SQLSTATE, ...).
    pub code: Cow<'static, str>,
    /// A client-safe message.
    pub message: Cow<'static, str>,
    /// PostgREST's `details`: a string or, for ambiguities, a JSON array; null when none.
    pub details: Value,
    /// PostgREST's `hint`.
    pub hint: Option<String>,
    /// Members added beside the shape's own (GoTrue's `weak_password`).
    pub extra: Map<String, Value>,
    /// The status to send when it is not the one the shape would choose for `status` (Storage
    /// answers a row-level security refusal, "403" in the body, with HTTP 400).
    pub sent_status: Option<StatusCode>,
}

impl Problem {
    /// A problem with a status, a code and a message.
    pub fn new(status: StatusCode, code: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            details: Value::Null,
            hint: None,
            extra: Map::new(),
            sent_status: None,
        }
    }

    /// With PostgREST's `details`.
    pub fn with_details(mut self, details: impl Into<Value>) -> Self {
        self.details = details.into();
        self
    }

    /// With PostgREST's `hint`.
    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// With one more top-level member.
    pub fn with_extra(mut self, name: &str, value: Value) -> Self {
        self.extra.insert(name.to_owned(), value);
        self
    }

    /// Sent with `status` on the wire whatever the shape would choose.
    pub fn sent_as(mut self, status: StatusCode) -> Self {
        self.sent_status = Some(status);
        self
    }
}

/// How Supabase Storage names a database error (SERVER-BEHAVIOUR.md §3a), by its kind.
fn storage_db_error(kind: DbErrorKind) -> (&'static str, u16, &'static str) {
    match kind {
        DbErrorKind::InsufficientPrivilege => ("AccessDenied", 403, "new row violates row-level security policy"),
        DbErrorKind::UniqueViolation => ("ResourceAlreadyExists", 409, "The resource already exists"),
        DbErrorKind::ForeignKeyViolation => ("ResourceReferenced", 409, "The resource is still referenced"),
        DbErrorKind::LockNotAvailable => ("ResourceLocked", 423, "The resource is locked"),
        DbErrorKind::QueryCanceled => ("DatabaseTimeout", 544, "The database timed out"),
        DbErrorKind::ReadOnlyTransaction => ("DatabaseReadOnly", 503, "The database is read only"),
        DbErrorKind::InvalidTextRepresentation => ("InvalidParameter", 400, "Invalid parameter"),
        // Postgres stores no NUL character, in text or in JSON.
        DbErrorKind::NulCharacter => ("InvalidParameter", 400, "Text may not contain the NUL character (\\u0000)"),
        _ => ("DatabaseError", 500, "Internal server error"),
    }
}

impl ForgeError {
    /// What the client is told: a generic message for server errors (whose cause is never
    /// sent), Postgres' message for statements it rejected, else the error itself.
    pub fn public_message(&self, authenticated: bool) -> String {
        match self {
            _ if self.status(authenticated).is_server_error() => self.code().info().message.to_owned(),
            ForgeError::Database(db) => db.message.clone(),
            other => other.to_string(),
        }
    }

    /// This error described for `format`: the code and status that service gives it.
    /// `authenticated` is whether the caller's role is other than anon (it decides 401 versus
    /// 403 for permission errors).
    pub fn problem(&self, format: WireFormat, authenticated: bool) -> Problem {
        let info = self.code().info();
        let status = self.status(authenticated);
        let message = self.public_message(authenticated);
        match format {
            WireFormat::PostgRest => match self {
                ForgeError::Database(db) if !status.is_server_error() => Problem::new(status, db.code.clone(), message)
                    .with_details(db.detail.clone())
                    .with_hint(db.hint.clone()),
                ForgeError::Database(db) => Problem::new(status, db.code.clone(), message),
                _ => Problem::new(status, info.postgrest, message),
            },
            // GoTrue never passes database errors to clients; a client must not see a 4xx for
            // what is the server's fault.
            WireFormat::GoTrue => match self {
                ForgeError::Database(_) => {
                    Problem::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal.info().gotrue, info.message)
                }
                _ => Problem::new(status, info.gotrue, message),
            },
            WireFormat::Storage | WireFormat::StorageVectors | WireFormat::Iceberg | WireFormat::Tus => {
                let problem = match self {
                    ForgeError::Database(db) => {
                        let kind = db.kind();
                        let (code, status, message) = storage_db_error(kind);
                        let problem = Problem::new(status_of(status), code, message);
                        // A row-level security refusal is an ordinary 4xx to Storage's plain
                        // routes (HTTP 400, "403"); only authentication failures are sent as
                        // 403 there. The other routes send the real status.
                        if kind == DbErrorKind::InsufficientPrivilege && format == WireFormat::Storage {
                            problem.sent_as(StatusCode::BAD_REQUEST)
                        } else {
                            problem
                        }
                    }
                    _ => Problem::new(status, info.storage, message),
                };
                // The Iceberg routes refuse credentials with 403 (`AccessDenied` from Storage's
                // JWT check), never 401.
                if format == WireFormat::Iceberg && problem.status == StatusCode::UNAUTHORIZED {
                    return Problem { status: StatusCode::FORBIDDEN, ..problem };
                }
                problem
            }
            WireFormat::Realtime | WireFormat::RealtimeSocket | WireFormat::Plain => {
                Problem::new(status, info.code, message)
            }
        }
    }

    /// Renders this error in `format`. `authenticated` is whether the caller's role is other
    /// than anon (it decides 401 versus 403 for permission errors).
    ///
    /// Server errors are logged here with their cause and answered with a generic body.
    pub fn render(self, format: WireFormat, authenticated: bool) -> Response {
        let problem = self.problem(format, authenticated);
        if problem.status.is_server_error() {
            tracing::error!(error = %self, source = ?std::error::Error::source(&self), code = self.code().as_str(), "request failed");
        }
        format.render(problem)
    }
}

impl WireFormat {
    /// Renders `problem` in this shape: the one place each shape's error body is built.
    pub fn render(self, problem: Problem) -> Response {
        let Problem { status, code, message, details, hint, extra, sent_status } = problem;
        let mut res = match self {
            WireFormat::PostgRest => {
                let mut res = json_response(
                    sent_status.unwrap_or(status),
                    json!({ "code": code, "message": message, "details": details, "hint": hint }),
                    extra,
                    JSON_UTF8,
                );
                insert(&mut res, HeaderName::from_static("proxy-status"), &format!("PostgREST; error={code}"));
                if res.status() == StatusCode::UNAUTHORIZED {
                    // JWT failures say why (RFC 6750); other 401s (42501 for anon) only ask.
                    let value = if matches!(code.as_ref(), "PGRST301" | "PGRST303") {
                        format!(
                            "Bearer error=\"invalid_token\", error_description=\"{}\"",
                            message.replace(['"', '\\'], "'")
                        )
                    } else {
                        "Bearer".to_owned()
                    };
                    insert(&mut res, header::WWW_AUTHENTICATE, &value);
                }
                res
            }
            WireFormat::GoTrue => {
                let body = json!({ "code": code, "error_code": code, "msg": message, "message": message });
                let mut res = json_response(sent_status.unwrap_or(status), body, extra, "application/json");
                insert(&mut res, HeaderName::from_static("x-supabase-api-version"), "2024-01-01");
                insert(&mut res, HeaderName::from_static("x-sb-error-code"), &code);
                res
            }
            WireFormat::Storage | WireFormat::StorageVectors => {
                // Storage answers every 4xx with HTTP 400 except authentication failures (403)
                // and a few with their own status; the real status is in the body. The vector
                // routes send the real status.
                let sent = match (sent_status, self) {
                    (Some(sent), _) => sent,
                    (None, WireFormat::StorageVectors) => status,
                    (None, _) => match status.as_u16() {
                        s if s >= 500 => status,
                        401 | 403 => StatusCode::FORBIDDEN,
                        416 | 429 | 431 => status,
                        _ => StatusCode::BAD_REQUEST,
                    },
                };
                let body = json!({
                    "statusCode": status.as_u16().to_string(),
                    "code": code,
                    // The vector routes send the code itself as the legacy label.
                    "error": if self == WireFormat::Storage { storage_label(&code) } else { &code },
                    "message": message,
                });
                json_response(sent, body, extra, JSON_UTF8)
            }
            WireFormat::Iceberg => {
                let sent = sent_status.unwrap_or(status);
                let body = json!({ "error": { "message": message, "type": code, "code": sent.as_u16() } });
                json_response(sent, body, extra, "application/json")
            }
            WireFormat::Tus => {
                let sent = sent_status.unwrap_or(status);
                let mut res = (sent, message.into_owned()).into_response();
                insert(&mut res, HeaderName::from_static("tus-resumable"), TUS_VERSION);
                if sent == StatusCode::PRECONDITION_FAILED {
                    insert(&mut res, HeaderName::from_static("tus-version"), TUS_VERSION);
                }
                res
            }
            WireFormat::Realtime => {
                json_response(sent_status.unwrap_or(status), json!({ "message": message }), extra, JSON_UTF8)
            }
            WireFormat::RealtimeSocket => {
                json_response(sent_status.unwrap_or(status), json!({ "error": message }), extra, "application/json")
            }
            WireFormat::Plain => json_response(
                sent_status.unwrap_or(status),
                json!({ "code": code, "message": message }),
                extra,
                JSON_UTF8,
            ),
        };
        res.extensions_mut().insert(RenderedError);
        res
    }
}

/// Marks a response as an error body a shape's renderer built (so a layer that rewrites
/// framework refusals can tell them from ours).
#[derive(Debug, Clone, Copy)]
pub struct RenderedError;

/// The TUS protocol version the resumable-upload routes speak.
pub const TUS_VERSION: &str = "1.0.0";

const JSON_UTF8: &str = "application/json; charset=utf-8";

/// The legacy `error` label Supabase Storage sends beside each code.
fn storage_label(code: &str) -> &str {
    match code {
        "NoSuchBucket" => "Bucket not found",
        "NoSuchKey" => "not_found",
        "KeyAlreadyExists" | "BucketAlreadyExists" | "ResourceAlreadyExists" => "Duplicate",
        "EntityTooLarge" => "Payload too large",
        "InvalidMimeType" => "invalid_mime_type",
        "InvalidRange" => "invalid_range",
        "AccessDenied" => "Unauthorized",
        "InvalidBucketName" => "Invalid Input",
        other => other,
    }
}

fn status_of(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl IntoResponse for ForgeError {
    /// Renders in the plain format. Services call [`ForgeError::render`] with their own.
    fn into_response(self) -> Response {
        self.render(WireFormat::Plain, false)
    }
}

/// An extractor rejection: the error, and the format of the service that rejected.
#[derive(Debug)]
pub struct Rejection {
    /// The error.
    pub error: ForgeError,
    /// How to render it.
    pub format: WireFormat,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        self.error.render(self.format, false)
    }
}

fn json_response(
    status: StatusCode,
    mut body: Value,
    extra: Map<String, Value>,
    content_type: &'static str,
) -> Response {
    if let Value::Object(members) = &mut body {
        members.extend(extra);
    }
    let mut res = (status, body.to_string()).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

fn insert(res: &mut Response, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        res.headers_mut().insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{AuthError, DbError, ErrorCode};

    async fn body(res: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 16).await.expect("body");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[test]
    fn sqlstate_mapping_follows_postgrest() {
        assert_eq!(sqlstate_status("23505", "", true), 409);
        assert_eq!(sqlstate_status("23503", "", true), 409);
        assert_eq!(sqlstate_status("42501", "", false), 401);
        assert_eq!(sqlstate_status("42501", "", true), 403);
        assert_eq!(sqlstate_status("22P02", "", true), 400);
        assert_eq!(sqlstate_status("25006", "", true), 405);
        assert_eq!(sqlstate_status("42P01", "", true), 404);
        assert_eq!(sqlstate_status("P0001", "", true), 400);
        assert_eq!(sqlstate_status("P0004", "", true), 500);
        assert_eq!(sqlstate_status("08006", "", true), 503);
        assert_eq!(sqlstate_status("53400", "", true), 500);
        assert_eq!(sqlstate_status("53300", "", true), 503);
        assert_eq!(sqlstate_status("PT418", "", true), 418);
        assert_eq!(sqlstate_status("PTabc", "", true), 500);
        assert_eq!(sqlstate_status("22023", "role \"x\" does not exist", true), 401);
    }

    #[tokio::test]
    async fn postgrest_shape_carries_proxy_status_and_www_authenticate() {
        let res = ForgeError::from(AuthError::new(ErrorCode::JwtExpired)).render(WireFormat::PostgRest, false);
        assert_eq!(res.status(), 401);
        assert_eq!(res.headers()["proxy-status"], "PostgREST; error=PGRST303");
        assert!(res.headers()["www-authenticate"].to_str().expect("ascii").contains("invalid_token"));
        let b = body(res).await;
        assert_eq!(b["code"], "PGRST303");
        assert_eq!(b["message"], "JWT expired");
        assert!(b["details"].is_null() && b["hint"].is_null());
    }

    #[tokio::test]
    async fn database_errors_pass_through_but_5xx_are_generic() {
        let db = DbError {
            code: "23505".into(),
            message: "duplicate key".into(),
            detail: Some("Key (id)=(1)".into()),
            hint: None,
            constraint: None,
        };
        let res = ForgeError::from(db).render(WireFormat::PostgRest, true);
        assert_eq!(res.status(), 409);
        let b = body(res).await;
        assert_eq!((b["code"].as_str(), b["details"].as_str()), (Some("23505"), Some("Key (id)=(1)")));

        let secret = DbError {
            code: "XX000".into(),
            message: "SELECT secret FROM x".into(),
            detail: Some("leak".into()),
            hint: None,
            constraint: None,
        };
        let res = ForgeError::from(secret).render(WireFormat::PostgRest, true);
        assert_eq!(res.status(), 500);
        let text = body(res).await.to_string();
        assert!(!text.contains("secret") && !text.contains("leak"), "{text}");

        let res = ForgeError::internal("connection string postgres://u:pw@h").render(WireFormat::GoTrue, true);
        assert_eq!(res.status(), 500);
        assert!(!body(res).await.to_string().contains("pw@h"));
    }

    #[tokio::test]
    async fn gotrue_shape_satisfies_both_client_parsers() {
        let res = ForgeError::from(AuthError::new(ErrorCode::JwtBadSignature)).render(WireFormat::GoTrue, false);
        assert_eq!(res.status(), 401);
        assert_eq!(res.headers()["x-supabase-api-version"], "2024-01-01");
        assert_eq!(res.headers()["x-sb-error-code"], "bad_jwt");
        let b = body(res).await;
        assert_eq!(b["code"], "bad_jwt");
        assert_eq!(b["error_code"], "bad_jwt");
        assert_eq!(b["msg"], b["message"]);
    }

    #[tokio::test]
    async fn storage_shape_folds_4xx_into_400_but_keeps_authentication_403() {
        let res = ForgeError::ProjectNotFound("nope".into()).render(WireFormat::Storage, false);
        assert_eq!(res.status(), 400);
        let b = body(res).await;
        assert_eq!(b["statusCode"], "404");
        assert_eq!(b["code"], "TenantNotFound");
        let res = ForgeError::from(AuthError::new(ErrorCode::JwtExpired)).render(WireFormat::Storage, false);
        assert_eq!(res.status(), 403);
        assert_eq!(body(res).await["statusCode"], "401");
        let rls = DbError {
            code: "42501".into(),
            message: "new row violates row-level security policy".into(),
            detail: None,
            hint: None,
            constraint: None,
        };
        let res = ForgeError::Database(rls).render(WireFormat::Storage, true);
        assert_eq!(res.status(), 400, "an RLS refusal is an ordinary 4xx");
        let b = body(res).await;
        assert_eq!((b["statusCode"].as_str(), b["code"].as_str()), (Some("403"), Some("AccessDenied")));
    }

    #[test]
    fn nested_routers_still_see_the_service_of_the_original_path() {
        let (mut parts, ()) = http::Request::builder().uri("/todos").body(()).expect("request").into_parts();
        parts.extensions.insert(axum::extract::OriginalUri("/rest/v1/todos".parse().expect("uri")));
        assert_eq!(WireFormat::for_request(&parts), WireFormat::PostgRest);
        parts.extensions.insert(WireFormat::Storage);
        assert_eq!(WireFormat::for_request(&parts), WireFormat::Storage, "an explicit format wins");
    }

    #[test]
    fn format_is_judged_by_service_prefix() {
        assert_eq!(WireFormat::for_path("/rest/v1/todos"), WireFormat::PostgRest);
        assert_eq!(WireFormat::for_path("/auth/v1/token"), WireFormat::GoTrue);
        assert_eq!(WireFormat::for_path("/storage/v1/object/x"), WireFormat::Storage);
        assert_eq!(WireFormat::for_path("/health"), WireFormat::Plain);
    }
}
