//! Signed URLs: signing downloads (one or many) and uploads, and verifying their tokens.

use axum::extract::Path;
use axum::{Extension, Json};
use forge_core::Project;
use forge_core::rls::RequestContext;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::ObjectPath;
use super::upload::{Mode, owner_of, precheck, upsert};
use crate::api::JsonBody;
use crate::error::{Error, ErrorKind, Result};
use crate::rows::{self, bucket_info};
use crate::service::Storage;

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct SignBody {
    /// An image transformation: the URL then points at `/render/image/sign/...`.
    pub(super) transform: Option<crate::render::Transform>,
    /// A number, or a numeric string (storage3 sends `"60"`; Supabase coerces it).
    #[serde(rename = "expiresIn", deserialize_with = "int_or_string")]
    pub(super) expires_in: Option<i64>,
    pub(super) paths: Vec<String>,
}

pub(super) fn int_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<i64>, D::Error> {
    use serde::de::Error as _;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| D::Error::custom("expiresIn must be an integer")),
        Some(Value::String(s)) => {
            s.trim().parse().map(Some).map_err(|_| D::Error::custom("expiresIn must be an integer"))
        }
        Some(_) => Err(D::Error::custom("expiresIn must be an integer")),
    }
}

pub(super) fn expiry(storage: &Storage, seconds: Option<i64>) -> Result<i64> {
    let max = i64::try_from(storage.config().max_signed_url_expiry).unwrap_or(i64::MAX);
    match seconds {
        Some(s) if s >= 1 && s <= max => Ok(s),
        _ => Err(Error::invalid(format!("expiresIn must be between 1 and {max} seconds"))),
    }
}

pub(super) fn signed_url(
    project: &Project,
    bucket: &str,
    name: &str,
    expires_in: i64,
    transform: Option<&crate::render::Transform>,
) -> Result<String> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut claims =
        json!({ "url": format!("{bucket}/{name}"), "scope": "download", "iat": now, "exp": now + expires_in });
    if let Some(t) = transform {
        claims["transformations"] = json!(t.to_query());
    }
    let claims = claims.as_object().cloned().unwrap_or_default();
    let token = project.keys().sign_hs256(&claims).map_err(Error::internal)?;
    let base = if transform.is_some() { "/render/image/sign" } else { "/object/sign" };
    Ok(format!("{base}/{bucket}/{name}?token={token}"))
}

pub(crate) async fn sign(
    Extension(storage): Extension<Storage>,
    project: Project,
    ctx: RequestContext,
    ObjectPath { bucket, name }: ObjectPath,
    JsonBody(body): JsonBody<SignBody>,
) -> Result<Json<Value>> {
    let expires_in = expiry(&storage, body.expires_in)?;
    // Only what the caller may read can be signed.
    if !rows::object_visible(&project, &ctx, &bucket, &name).await? {
        return Err(Error::no_such_key());
    }
    if let Some(t) = &body.transform {
        crate::render::check(t)?;
    }
    Ok(Json(json!({ "signedURL": signed_url(&project, &bucket, &name, expires_in, body.transform.as_ref())? })))
}

pub(crate) async fn sign_many(
    Extension(storage): Extension<Storage>,
    project: Project,
    ctx: RequestContext,
    Path(bucket): Path<String>,
    JsonBody(body): JsonBody<SignBody>,
) -> Result<Json<Value>> {
    let expires_in = expiry(&storage, body.expires_in)?;
    if body.paths.is_empty() || body.paths.len() > 1000 {
        return Err(Error::invalid("paths must name between 1 and 1000 objects"));
    }
    let visible = rows::visible_names(&project, &ctx, &bucket, &body.paths).await?;
    let mut out = Vec::with_capacity(body.paths.len());
    for path in &body.paths {
        if visible.contains(path) {
            out.push(
                json!({ "path": path, "signedURL": signed_url(&project, &bucket, path, expires_in, None)?, "error": null }),
            );
        } else {
            out.push(json!({ "path": path, "signedURL": null, "error": "Either the object does not exist or you do not have access to it" }));
        }
    }
    Ok(Json(Value::Array(out)))
}

/// How long a signed upload URL stays valid (Supabase's two hours).
pub(super) const UPLOAD_URL_TTL: i64 = 2 * 3600;

/// `createSignedUploadUrl`: a URL anyone holding it may upload this one object to, once the
/// caller has shown it may create it.
pub(crate) async fn sign_upload(
    project: Project,
    ctx: RequestContext,
    ObjectPath { bucket, name }: ObjectPath,
    headers: HeaderMap,
) -> Result<Json<Value>> {
    bucket_info(&project, &bucket).await?;
    let upsert = upsert(&headers);
    let owner = owner_of(&ctx);
    // Would the caller's upload pass the policies (insert, or the upsert's update)? Try it
    // as the caller and roll back.
    precheck(&project, &ctx, &bucket, &name, owner.as_deref(), Mode::Create { upsert }).await?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "url": format!("{bucket}/{name}"),
        "scope": "upload",
        "upsert": upsert,
        "owner": owner,
        "iat": now,
        "exp": now + UPLOAD_URL_TTL,
    });
    let token = project.keys().sign_hs256(claims.as_object().expect("an object")).map_err(Error::internal)?;
    Ok(Json(json!({ "url": format!("/object/upload/sign/{bucket}/{name}?token={token}"), "token": token })))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct TokenQuery {
    pub(super) token: Option<String>,
}

/// What a signed upload URL lets its holder do: create one object (or, with `upsert`,
/// replace it), owned by the URL's signer.
pub(crate) struct UploadGrant {
    pub(crate) owner: Option<String>,
    pub(crate) upsert: bool,
}

impl UploadGrant {
    /// The grant of an upload token for `bucket/name` (see [`verify_token`]).
    pub(crate) fn verify(project: &Project, token: Option<&str>, bucket: &str, name: &str) -> Result<Self> {
        let claims = verify_token(project, token, "upload", bucket, name)?;
        Ok(UploadGrant {
            owner: claims.get("owner").and_then(Value::as_str).map(str::to_owned),
            upsert: claims.get("upsert").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    /// The settings the grant's row changes run with: the policies were checked, as the
    /// signer, when the URL was signed.
    pub(crate) fn ctx(method: http::Method, path: &'static str) -> RequestContext {
        RequestContext::new(forge_core::Principal::service(), method, path)
    }
}

/// Verifies a signed-URL token: its signature and expiry, its scope (`download` or
/// `upload`), and that it names `bucket/name`.
pub(super) fn verify_token(
    project: &Project,
    token: Option<&str>,
    scope: &str,
    bucket: &str,
    name: &str,
) -> Result<forge_core::Claims> {
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::new(ErrorKind::InvalidSignature, "Querystring must have required property 'token'"))?;
    let claims = project.keys().verify_own_jwt(token).map_err(|e| match e.code {
        forge_core::ErrorCode::JwtExpired => Error::new(ErrorKind::ExpiredToken, "The provided token has expired."),
        _ => Error::new(ErrorKind::InvalidJwt, format!("The token is invalid: {e}")),
    })?;
    if claims.get("scope").and_then(Value::as_str) != Some(scope) {
        return Err(Error::new(ErrorKind::InvalidSignature, format!("Token is not scoped for {scope}")));
    }
    if claims.get("url").and_then(Value::as_str) != Some(format!("{bucket}/{name}").as_str()) {
        return Err(Error::new(ErrorKind::InvalidSignature, "The signature does not match the object"));
    }
    Ok(claims)
}
