//! Rendering errors in each service's wire shape.

use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode, header};
use serde_json::json;

use super::ForgeError;

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

/// What Supabase Storage calls a database error (SERVER-BEHAVIOUR.md §3a).
fn storage_db_error(code: &str) -> (&'static str, u16, &'static str) {
    match code {
        "42501" => ("AccessDenied", 403, "new row violates row-level security policy"),
        "23505" => ("ResourceAlreadyExists", 409, "The resource already exists"),
        "23503" => ("ResourceReferenced", 409, "The resource is still referenced"),
        "55P03" => ("ResourceLocked", 423, "The resource is locked"),
        "57014" => ("DatabaseTimeout", 544, "The database timed out"),
        "25006" => ("DatabaseReadOnly", 503, "The database is read only"),
        "22P02" => ("InvalidParameter", 400, "Invalid parameter"),
        // A NUL character in text (22021) or in JSON (22P05): Postgres stores neither.
        "22021" | "22P05" => ("InvalidParameter", 400, "Text may not contain the NUL character (\\u0000)"),
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

    /// How Supabase Storage reports this error: its code, its real status and its message
    /// (database errors by SQLSTATE, as Storage names them).
    pub fn storage_parts(&self, authenticated: bool) -> (&'static str, u16, String) {
        match self {
            ForgeError::Database(db) => {
                let (code, status, message) = storage_db_error(&db.code);
                (code, status, message.to_owned())
            }
            other => {
                (other.code().info().storage, other.status(authenticated).as_u16(), other.public_message(authenticated))
            }
        }
    }

    /// Renders this error in `format`. `authenticated` is whether the caller's role is other
    /// than anon (it decides 401 versus 403 for permission errors).
    ///
    /// Server errors are logged here with their cause and answered with a generic body.
    pub fn render(self, format: WireFormat, authenticated: bool) -> Response {
        let code = self.code();
        let info = code.info();
        let status = self.status(authenticated);
        if status.is_server_error() {
            tracing::error!(error = %self, source = ?std::error::Error::source(&self), code = info.code, "request failed");
        }
        let public_message = self.public_message(authenticated);

        match format {
            WireFormat::PostgRest => {
                let (pg_code, details, hint) = match &self {
                    ForgeError::Database(db) if !status.is_server_error() => {
                        (db.code.clone(), db.detail.clone(), db.hint.clone())
                    }
                    ForgeError::Database(db) => (db.code.clone(), None, None),
                    _ => (info.postgrest.to_owned(), None, None),
                };
                let body = json!({ "code": pg_code, "message": public_message, "details": details, "hint": hint });
                let mut res = json_response(status, &body);
                insert(&mut res, HeaderName::from_static("proxy-status"), &format!("PostgREST; error={pg_code}"));
                if status == StatusCode::UNAUTHORIZED {
                    let value = match info.postgrest {
                        "PGRST301" | "PGRST303" if !matches!(self, ForgeError::Database(_)) => {
                            format!(
                                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                                public_message.replace(['"', '\\'], "'")
                            )
                        }
                        _ => "Bearer".to_owned(),
                    };
                    insert(&mut res, header::WWW_AUTHENTICATE, &value);
                }
                res
            }
            WireFormat::GoTrue => {
                let (status, gt_code, message) = match &self {
                    // GoTrue never passes database errors to clients; a client must not see
                    // a 4xx for what is the server's fault.
                    ForgeError::Database(_) => {
                        (StatusCode::INTERNAL_SERVER_ERROR, "unexpected_failure", info.message.to_owned())
                    }
                    _ => (status, info.gotrue, public_message),
                };
                if status.is_server_error() && matches!(self, ForgeError::Database(_)) {
                    tracing::error!(error = %self, "database error on an auth endpoint");
                }
                let body = json!({ "code": gt_code, "error_code": gt_code, "msg": message, "message": message });
                let mut res = json_response(status, &body);
                insert(&mut res, HeaderName::from_static("x-supabase-api-version"), "2024-01-01");
                insert(&mut res, HeaderName::from_static("x-sb-error-code"), gt_code);
                res
            }
            WireFormat::Storage => {
                let (st_code, real_status, message) = self.storage_parts(authenticated);
                // Storage answers every 4xx with HTTP 400 except authentication failures
                // (403) and a few with their own status; the real status is in the body. A
                // row-level security refusal is an ordinary 4xx there (HTTP 400, "403").
                let http_status = match real_status {
                    s if s >= 500 => s.min(599),
                    403 if matches!(self, ForgeError::Database(_)) => 400,
                    401 | 403 => 403,
                    416 | 429 | 431 => real_status,
                    _ => 400,
                };
                let body = json!({
                    "statusCode": real_status.to_string(),
                    "code": st_code,
                    "error": st_code,
                    "message": message,
                });
                json_response(StatusCode::from_u16(http_status).unwrap_or(StatusCode::BAD_REQUEST), &body)
            }
            WireFormat::Plain => {
                let body = json!({ "code": info.code, "message": public_message });
                json_response(status, &body)
            }
        }
    }
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

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut res = (status, body.to_string()).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
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
