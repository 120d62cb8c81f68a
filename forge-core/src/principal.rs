//! Who is calling: [`Principal`] and its extractor.

use std::sync::{Arc, OnceLock};

use axum::extract::FromRequestParts;
use http::request::Parts;
use serde_json::{Map, Value};

use crate::error::{ForgeError, Rejection, WireFormat};
use crate::project::Project;

/// Verified JWT claims (or the synthetic claims of an opaque API key). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Claims(Arc<ClaimsInner>);

#[derive(Debug)]
struct ClaimsInner {
    map: Map<String, Value>,
    /// The JSON Postgres sees, rendered once per role it was forced to.
    json: OnceLock<(String, String)>,
}

impl PartialEq for Claims {
    fn eq(&self, other: &Self) -> bool {
        self.0.map == other.0.map
    }
}

impl std::ops::Deref for ClaimsInner {
    type Target = Map<String, Value>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl Claims {
    /// Wraps verified claims.
    pub fn new(claims: Map<String, Value>) -> Self {
        Self(Arc::new(ClaimsInner { map: claims, json: OnceLock::new() }))
    }

    /// The claims as JSON with `role` set to `role`; rendered once and reused (a cached
    /// token's claims are rendered once for all its requests).
    pub(crate) fn json_with_role(&self, role: &str) -> String {
        if let Some((r, json)) = self.0.json.get()
            && r == role
        {
            return json.clone();
        }
        let mut map = self.0.map.clone();
        map.insert("role".into(), Value::String(role.to_owned()));
        let json = Value::Object(map).to_string();
        let _ = self.0.json.set((role.to_owned(), json.clone()));
        json
    }

    fn for_role(role: &str) -> Self {
        let mut map = Map::new();
        map.insert("role".into(), Value::String(role.into()));
        Self::new(map)
    }

    /// The `role` claim.
    pub fn role(&self) -> Option<&str> {
        self.0.get("role").and_then(Value::as_str)
    }

    /// The `sub` claim (the user id for GoTrue tokens).
    pub fn sub(&self) -> Option<&str> {
        self.0.get("sub").and_then(Value::as_str)
    }

    /// The `email` claim.
    pub fn email(&self) -> Option<&str> {
        self.0.get("email").and_then(Value::as_str)
    }

    /// Any claim.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// All claims.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0.map
    }
}

/// The caller of a request, decided from its `apikey` and `Authorization` headers.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Principal {
    /// The anon role: an anon or publishable key and no user token.
    Anon(Claims),
    /// A signed-in user (role `authenticated`, or another role named by the token).
    User(Claims),
    /// The service role: bypasses RLS.
    Service(Claims),
}

impl Principal {
    /// The anonymous principal with claims `{"role":"anon"}`.
    pub fn anon() -> Self {
        Principal::Anon(Claims::for_role("anon"))
    }

    /// The service principal with claims `{"role":"service_role"}`.
    pub fn service() -> Self {
        Principal::Service(Claims::for_role("service_role"))
    }

    /// The principal verified claims stand for, by their `role` (absent means anon).
    pub fn from_claims(claims: Claims) -> Self {
        match claims.role() {
            None | Some("anon") => Principal::Anon(claims),
            Some("service_role") => Principal::Service(claims),
            Some(_) => Principal::User(claims),
        }
    }

    /// The Postgres role requests of this principal run as.
    pub fn role(&self) -> &str {
        match self {
            Principal::Anon(_) => "anon",
            Principal::Service(_) => "service_role",
            Principal::User(c) => c.role().unwrap_or("authenticated"),
        }
    }

    /// The claims.
    pub fn claims(&self) -> &Claims {
        match self {
            Principal::Anon(c) | Principal::User(c) | Principal::Service(c) => c,
        }
    }

    /// The user id (`sub`) of a signed-in user.
    pub fn user_id(&self) -> Option<uuid::Uuid> {
        match self {
            Principal::User(c) => c.sub().and_then(|s| s.parse().ok()),
            _ => None,
        }
    }

    /// Whether the caller is anything but anon (decides 401 versus 403 for permission errors).
    pub fn is_authenticated(&self) -> bool {
        !matches!(self, Principal::Anon(_))
    }

    /// The claims as the JSON Postgres sees in `request.jwt.claims`, with `role` forced to the
    /// resolved role (as PostgREST does).
    pub fn claims_json(&self) -> String {
        self.claims().json_with_role(self.role())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(p.clone());
        }
        let format = WireFormat::for_request(parts);
        let project = parts.extensions.get::<Project>().ok_or_else(|| Rejection {
            error: ForgeError::internal("no Project in request extensions: is ProjectLayer installed?"),
            format,
        })?;
        let apikey = parts.headers.get("apikey").map(|v| v.as_bytes());
        let authorization = parts.headers.get(http::header::AUTHORIZATION).map(|v| v.as_bytes());
        let principal =
            project.keys().authenticate(apikey, authorization).map_err(|e| Rejection { error: e.into(), format })?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}
