//! External identity providers: the [`IdentityProvider`] trait, GitHub, and any OpenID Connect
//! provider found by discovery (Google is one).
//!
//! Forge runs the authorization-code flow with PKCE towards the provider (the `oauth2` crate
//! builds the URL and exchanges the code); OIDC ID tokens are verified against the provider's
//! JWKS (signature, `iss`, `aud`, `exp`, `nonce`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet, ExtraTokenFields,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, StandardRevocableToken, StandardTokenResponse,
    TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

/// Why an identity provider failed, by meaning. The message of each is for the log and for
/// `bad_oauth_callback`'s description; it never holds a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The provider's settings cannot be used (no client id, no issuer, a URL that does not
    /// parse).
    #[error("provider settings: {0}")]
    Config(String),
    /// The provider could not be reached, or its answer could not be read.
    #[error("the provider could not be reached: {0}")]
    Request(#[source] forge_core::error::BoxError),
    /// The provider answered with a refusal (an error status, a refused code).
    #[error("{0}")]
    Refused(String),
    /// The provider answered with something sign-in cannot use (a profile without an id, an
    /// ID token that does not verify or whose nonce does not match).
    #[error("{0}")]
    Invalid(String),
    /// The provider does not do this (an ID-token sign-in with a provider that issues none).
    #[error("{0}")]
    Unsupported(&'static str),
}

impl ProviderError {
    /// A request that failed on the way (connect, TLS, reading the body).
    pub fn request(e: impl Into<forge_core::error::BoxError>) -> Self {
        Self::Request(e.into())
    }
}

/// What a provider says about the user.
#[derive(Debug, Clone, Default)]
pub struct ProviderUser {
    /// The provider's stable subject id.
    pub subject: String,
    /// The user's email, if shared.
    pub email: Option<String>,
    /// Whether the provider vouches for the email.
    pub email_verified: bool,
    /// Everything else, kept as the identity's `identity_data`.
    pub data: Map<String, Value>,
    /// The provider's access token (returned to the client as `provider_token`).
    pub access_token: Option<String>,
    /// The provider's refresh token (returned as `provider_refresh_token`).
    pub refresh_token: Option<String>,
}

/// What an authorization redirect needs.
#[derive(Debug)]
pub struct AuthorizeParams<'a> {
    /// The opaque `state` to round-trip.
    pub state: &'a str,
    /// Forge's callback URL (`.../auth/v1/callback`).
    pub redirect_uri: &'a str,
    /// The PKCE verifier towards the provider (the provider is sent its S256 challenge).
    pub pkce_verifier: &'a str,
    /// The OIDC nonce to bind the ID token to.
    pub nonce: &'a str,
    /// Extra scopes the app asked for.
    pub scopes: &'a [String],
}

/// A boxed future returned by [`IdentityProvider`] methods.
pub type ProviderFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>>;

/// An external identity provider. Implement it for providers Forge does not ship.
pub trait IdentityProvider: Send + Sync + std::fmt::Debug + 'static {
    /// The provider's name as clients send it (`provider=github`).
    fn name(&self) -> &str;

    /// The URL to send the browser to.
    fn authorize_url<'a>(&'a self, params: &'a AuthorizeParams<'a>) -> ProviderFuture<'a, String>;

    /// Exchanges the callback's `code` for the user.
    fn exchange<'a>(
        &'a self,
        code: &'a str,
        pkce_verifier: &'a str,
        redirect_uri: &'a str,
        nonce: &'a str,
    ) -> ProviderFuture<'a, ProviderUser>;

    /// Verifies an ID token obtained by the client itself (`grant_type=id_token`). Providers
    /// without ID tokens refuse.
    fn verify_id_token<'a>(&'a self, id_token: &'a str, nonce: Option<&'a str>) -> ProviderFuture<'a, ProviderUser> {
        let _ = (id_token, nonce);
        Box::pin(async { Err(ProviderError::Unsupported("this provider does not issue ID tokens")) })
    }
}

/// Settings of a built-in provider (`[auth.external.<name>]`). Its `Debug` hides the secret.
#[derive(Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ProviderConfig {
    /// `github`, `google` or `oidc` (default: the provider's name if it is `github` or
    /// `google`, else `oidc`).
    pub kind: Option<String>,
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret.
    #[serde(serialize_with = "redact")]
    pub secret: String,
    /// The OIDC issuer (discovery at `<issuer>/.well-known/openid-configuration`).
    pub issuer: Option<String>,
    /// Scopes requested besides the provider's defaults.
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("secret", &"<redacted>")
            .field("issuer", &self.issuer)
            .field("scopes", &self.scopes)
            .finish()
    }
}

fn redact<S: serde::Serializer>(value: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if value.is_empty() { "" } else { "<redacted>" })
}

impl ProviderConfig {
    /// A provider with this OAuth client id and secret (its kind follows from its name).
    pub fn new(client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self { client_id: client_id.into(), secret: secret.into(), ..Self::default() }
    }

    /// With this kind (`github`, `google` or `oidc`) whatever the provider's name.
    pub fn with_kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// With this OIDC issuer.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// With these scopes requested besides the provider's defaults (replacing any set before).
    pub fn with_scopes(mut self, scopes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Builds the provider named `name`.
    pub fn build(&self, name: &str) -> Result<Arc<dyn IdentityProvider>, ProviderError> {
        let kind = self.kind.clone().unwrap_or_else(|| match name {
            "github" | "google" => name.to_owned(),
            _ => "oidc".into(),
        });
        if self.client_id.is_empty() {
            return Err(ProviderError::Config(format!("provider {name}: client_id is required")));
        }
        match kind.as_str() {
            "github" => Ok(Arc::new(GitHub::new(&self.client_id, &self.secret, self.scopes.clone()))),
            "google" => Ok(Arc::new(Oidc::new(
                name,
                self.issuer.as_deref().unwrap_or("https://accounts.google.com"),
                &self.client_id,
                &self.secret,
                self.scopes.clone(),
            ))),
            "oidc" => {
                let issuer = self
                    .issuer
                    .as_deref()
                    .ok_or_else(|| ProviderError::Config(format!("provider {name}: issuer is required")))?;
                Ok(Arc::new(Oidc::new(name, issuer, &self.client_id, &self.secret, self.scopes.clone())))
            }
            other => Err(ProviderError::Config(format!("provider {name}: unknown kind {other:?}"))),
        }
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("forge-auth/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// Adapts reqwest 0.13 to `oauth2`'s HTTP client interface.
async fn send_oauth(
    client: &reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, ProviderError> {
    let (parts, body) = request.into_parts();
    let mut builder = client.request(parts.method, parts.uri.to_string()).body(body);
    for (name, value) in &parts.headers {
        builder = builder.header(name, value);
    }
    let res = builder.send().await.map_err(ProviderError::request)?;
    let mut out = http::Response::builder().status(res.status());
    for (name, value) in res.headers() {
        out = out.header(name, value);
    }
    let bytes = res.bytes().await.map_err(ProviderError::request)?;
    out.body(bytes.to_vec()).map_err(ProviderError::request)
}

/// reqwest 0.13 as `oauth2`'s HTTP client.
struct Http<'h>(&'h reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for Http<'_> {
    type Error = ProviderError;
    type Future = Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, ProviderError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(send_oauth(self.0, request))
    }
}

/// Token-response fields besides the standard ones: the OIDC ID token.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct IdTokenFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenFields {}

type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    StandardTokenResponse<IdTokenFields, BasicTokenType>,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

fn oauth_client(client_id: &str, secret: &str, auth: &str, token: &str) -> Result<OAuthClient, ProviderError> {
    let mut c = oauth2::Client::new(ClientId::new(client_id.to_owned()))
        .set_auth_uri(AuthUrl::new(auth.to_owned()).map_err(|e| ProviderError::Config(e.to_string()))?)
        .set_token_uri(TokenUrl::new(token.to_owned()).map_err(|e| ProviderError::Config(e.to_string()))?);
    if !secret.is_empty() {
        c = c.set_client_secret(ClientSecret::new(secret.to_owned()));
    }
    Ok(c)
}

fn build_authorize_url(
    client: &OAuthClient,
    params: &AuthorizeParams<'_>,
    scopes: impl IntoIterator<Item = String>,
    nonce: bool,
) -> Result<String, ProviderError> {
    let redirect = RedirectUrl::new(params.redirect_uri.to_owned()).map_err(ProviderError::request)?;
    let state = params.state.to_owned();
    let mut req = client
        .authorize_url(move || CsrfToken::new(state))
        .set_redirect_uri(std::borrow::Cow::Owned(redirect))
        .set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            params.pkce_verifier.to_owned(),
        )));
    for s in scopes.into_iter().chain(params.scopes.iter().cloned()) {
        req = req.add_scope(Scope::new(s));
    }
    if nonce {
        req = req.add_extra_param("nonce", params.nonce.to_owned());
    }
    Ok(req.url().0.to_string())
}

async fn exchange_code(
    http: &reqwest::Client,
    client: &OAuthClient,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
) -> Result<StandardTokenResponse<IdTokenFields, BasicTokenType>, ProviderError> {
    let redirect = RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| ProviderError::Config(e.to_string()))?;
    let send = Http(http);
    client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
        .set_redirect_uri(std::borrow::Cow::Owned(redirect))
        .request_async(&send)
        .await
        .map_err(|e| ProviderError::Refused(format!("the provider refused the code: {e}")))
}

/// GitHub (OAuth 2, no ID tokens): the user from `/user` and the primary verified email
/// from `/user/emails`.
#[derive(Debug)]
pub struct GitHub {
    client: OAuthClient,
    http: reqwest::Client,
    scopes: Vec<String>,
    api: String,
}

impl GitHub {
    /// GitHub with the given OAuth app credentials.
    pub fn new(client_id: &str, secret: &str, scopes: Vec<String>) -> Self {
        Self::with_endpoints(
            client_id,
            secret,
            scopes,
            "https://github.com/login/oauth/authorize",
            "https://github.com/login/oauth/access_token",
            "https://api.github.com",
        )
        .expect("GitHub's URLs are valid")
    }

    /// GitHub Enterprise, or a test double.
    pub fn with_endpoints(
        client_id: &str,
        secret: &str,
        scopes: Vec<String>,
        authorize: &str,
        token: &str,
        api: &str,
    ) -> Result<Self, ProviderError> {
        Ok(Self {
            client: oauth_client(client_id, secret, authorize, token)?,
            http: http_client(),
            scopes,
            api: api.trim_end_matches('/').to_owned(),
        })
    }

    async fn get_json(&self, path: &str, token: &str) -> Result<Value, ProviderError> {
        let res = self
            .http
            .get(format!("{}{path}", self.api))
            .bearer_auth(token)
            .header("accept", "application/vnd.github+json")
            .send()
            .await
            .map_err(ProviderError::request)?;
        if !res.status().is_success() {
            return Err(ProviderError::Refused(format!("GitHub answered {} for {path}", res.status())));
        }
        res.json().await.map_err(ProviderError::request)
    }
}

impl IdentityProvider for GitHub {
    fn name(&self) -> &str {
        "github"
    }

    fn authorize_url<'a>(&'a self, params: &'a AuthorizeParams<'a>) -> ProviderFuture<'a, String> {
        let scopes = ["read:user".to_owned(), "user:email".to_owned()].into_iter().chain(self.scopes.iter().cloned());
        let url = build_authorize_url(&self.client, params, scopes, false);
        Box::pin(async move { url })
    }

    fn exchange<'a>(
        &'a self,
        code: &'a str,
        verifier: &'a str,
        redirect_uri: &'a str,
        _nonce: &'a str,
    ) -> ProviderFuture<'a, ProviderUser> {
        Box::pin(async move {
            let tokens = exchange_code(&self.http, &self.client, code, verifier, redirect_uri).await?;
            let access = tokens.access_token().secret().clone();
            let user = self.get_json("/user", &access).await?;
            let emails = self.get_json("/user/emails", &access).await.unwrap_or(Value::Array(Vec::new()));
            let primary = emails.as_array().and_then(|list| {
                list.iter()
                    .find(|e| e["primary"] == true && e["verified"] == true)
                    .or_else(|| list.iter().find(|e| e["verified"] == true))
            });
            let subject = match &user["id"] {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.clone(),
                _ => return Err(ProviderError::Invalid("GitHub returned a user without an id".into())),
            };
            let email = primary.and_then(|e| e["email"].as_str()).map(str::to_lowercase);
            let mut data = Map::new();
            data.insert("sub".into(), json!(subject));
            data.insert("provider_id".into(), json!(subject));
            for (k, from) in
                [("user_name", "login"), ("full_name", "name"), ("name", "name"), ("avatar_url", "avatar_url")]
            {
                if let Some(v) = user[from].as_str() {
                    data.insert(k.into(), json!(v));
                }
            }
            data.insert("iss".into(), json!(self.api));
            if let Some(e) = &email {
                data.insert("email".into(), json!(e));
                data.insert("email_verified".into(), json!(true));
            }
            Ok(ProviderUser {
                subject,
                email_verified: email.is_some(),
                email,
                data,
                access_token: Some(access),
                refresh_token: tokens.refresh_token().map(|t| t.secret().clone()),
            })
        })
    }
}

#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
    jwks_uri: String,
}

#[derive(Debug)]
struct Discovered {
    doc: Discovery,
    client: OAuthClient,
}

/// Any OpenID Connect provider, configured from its discovery document.
pub struct Oidc {
    name: String,
    issuer: String,
    client_id: String,
    secret: String,
    scopes: Vec<String>,
    http: reqwest::Client,
    discovered: OnceCell<Discovered>,
    jwks: tokio::sync::RwLock<Option<(JwkSet, std::time::Instant)>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// How long fetched signing keys are trusted before they are fetched again.
const JWKS_TTL: Duration = Duration::from_secs(600);

impl Oidc {
    /// The provider `name` at `issuer`, discovered on first use.
    pub fn new(name: &str, issuer: &str, client_id: &str, secret: &str, scopes: Vec<String>) -> Self {
        Self {
            name: name.to_owned(),
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_id: client_id.to_owned(),
            secret: secret.to_owned(),
            scopes,
            http: http_client(),
            discovered: OnceCell::new(),
            jwks: tokio::sync::RwLock::new(None),
        }
    }

    async fn discovered(&self) -> Result<&Discovered, ProviderError> {
        self.discovered
            .get_or_try_init(|| async {
                let url = format!("{}/.well-known/openid-configuration", self.issuer);
                let res = self.http.get(&url).send().await.map_err(ProviderError::request)?;
                if !res.status().is_success() {
                    return Err(ProviderError::Refused(format!("OIDC discovery at {url} answered {}", res.status())));
                }
                let doc: Discovery = res.json().await.map_err(ProviderError::request)?;
                if doc.issuer.trim_end_matches('/') != self.issuer {
                    return Err(ProviderError::Invalid(format!(
                        "OIDC discovery names issuer {:?}, expected {:?}",
                        doc.issuer, self.issuer
                    )));
                }
                let client =
                    oauth_client(&self.client_id, &self.secret, &doc.authorization_endpoint, &doc.token_endpoint)?;
                Ok(Discovered { doc, client })
            })
            .await
    }

    async fn keys(&self, refresh: bool) -> Result<JwkSet, ProviderError> {
        if !refresh
            && let Some((set, at)) = self.jwks.read().await.as_ref()
            && at.elapsed() < JWKS_TTL
        {
            return Ok(set.clone());
        }
        let d = self.discovered().await?;
        let set: JwkSet = self
            .http
            .get(&d.doc.jwks_uri)
            .send()
            .await
            .map_err(ProviderError::request)?
            .json()
            .await
            .map_err(ProviderError::request)?;
        *self.jwks.write().await = Some((set.clone(), std::time::Instant::now()));
        Ok(set)
    }

    /// Verifies an ID token: signature against the JWKS (refetched once for an unknown
    /// `kid`), `iss`, `aud` = our client id, `exp`, and the nonce when one is expected.
    async fn verify(&self, id_token: &str, nonce: Option<&str>) -> Result<Map<String, Value>, ProviderError> {
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|e| ProviderError::Invalid(format!("invalid ID token: {e}")))?;
        let kid = header.kid.clone();
        let mut set = self.keys(false).await?;
        if kid.as_ref().is_some_and(|k| set.find(k).is_none()) {
            set = self.keys(true).await?;
        }
        let jwk = match &kid {
            Some(k) => set.find(k),
            None => set.keys.first(),
        }
        .ok_or_else(|| ProviderError::Invalid("no provider key matches the ID token".into()))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| ProviderError::Invalid(e.to_string()))?;
        use jsonwebtoken::Algorithm::*;
        if !matches!(header.alg, RS256 | RS384 | RS512 | ES256 | ES384 | PS256 | PS384 | PS512 | EdDSA) {
            return Err(ProviderError::Invalid(format!("ID token algorithm {:?} is not accepted", header.alg)));
        }
        let mut v = Validation::new(header.alg);
        v.set_audience(&[&self.client_id]);
        // Google writes its issuer without the scheme in some tokens.
        let bare = self.issuer.strip_prefix("https://").unwrap_or(&self.issuer).to_owned();
        v.set_issuer(&[&self.issuer, &format!("{}/", self.issuer), &bare]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = 60;
        let data = jsonwebtoken::decode::<Map<String, Value>>(id_token, &key, &v)
            .map_err(|e| ProviderError::Invalid(format!("invalid ID token: {e}")))?;
        let claims = data.claims;
        // Both or neither: a token bound to a nonce is only accepted with it.
        match (nonce, claims.get("nonce").and_then(Value::as_str)) {
            (None, None) => {}
            (Some(expected), Some(got)) => {
                let hashed = crate::crypto::sha256_hex(expected.as_bytes());
                if !(crate::crypto::ct_eq(got, expected) || crate::crypto::ct_eq(got, &hashed)) {
                    return Err(ProviderError::Invalid("the ID token's nonce does not match".into()));
                }
            }
            _ => {
                return Err(ProviderError::Invalid(
                    "passed nonce and nonce in the ID token should either both exist or not".into(),
                ));
            }
        }
        Ok(claims)
    }

    fn user_from_claims(
        &self,
        claims: Map<String, Value>,
        access: Option<String>,
        refresh: Option<String>,
    ) -> Result<ProviderUser, ProviderError> {
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or_else(|| ProviderError::Invalid("the ID token has no sub".into()))?
            .to_owned();
        let email = claims.get("email").and_then(Value::as_str).map(str::to_lowercase);
        let email_verified = match claims.get("email_verified") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true",
            _ => false,
        };
        // What the provider says about the user, without the token's own mechanics.
        const TOKEN_CLAIMS: &[&str] =
            &["aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "azp", "auth_time", "jti", "sid"];
        let mut data: Map<String, Value> = claims
            .iter()
            .filter(|(k, _)| !TOKEN_CLAIMS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(n) = claims.get("name") {
            data.insert("full_name".into(), n.clone());
        }
        if let Some(p) = claims.get("picture") {
            data.insert("avatar_url".into(), p.clone());
        }
        data.insert("provider_id".into(), json!(subject));
        Ok(ProviderUser { subject, email, email_verified, data, access_token: access, refresh_token: refresh })
    }
}

impl IdentityProvider for Oidc {
    fn name(&self) -> &str {
        &self.name
    }

    fn authorize_url<'a>(&'a self, params: &'a AuthorizeParams<'a>) -> ProviderFuture<'a, String> {
        Box::pin(async move {
            let d = self.discovered().await?;
            let scopes =
                ["openid", "email", "profile"].map(str::to_owned).into_iter().chain(self.scopes.iter().cloned());
            build_authorize_url(&d.client, params, scopes, true)
        })
    }

    fn exchange<'a>(
        &'a self,
        code: &'a str,
        verifier: &'a str,
        redirect_uri: &'a str,
        nonce: &'a str,
    ) -> ProviderFuture<'a, ProviderUser> {
        Box::pin(async move {
            let d = self.discovered().await?;
            let tokens = exchange_code(&self.http, &d.client, code, verifier, redirect_uri).await?;
            let access = tokens.access_token().secret().clone();
            let refresh = tokens.refresh_token().map(|t| t.secret().clone());
            let id_token = tokens
                .extra_fields()
                .id_token
                .clone()
                .ok_or_else(|| ProviderError::Invalid("the provider returned no ID token".into()))?;
            let mut claims = self.verify(&id_token, Some(nonce)).await?;
            // The userinfo endpoint may know more (some providers keep the email there).
            if let Some(url) = &d.doc.userinfo_endpoint
                && let Ok(res) = self.http.get(url).bearer_auth(&access).send().await
                && res.status().is_success()
                && let Ok(Value::Object(info)) = res.json::<Value>().await
                && info.get("sub") == claims.get("sub")
            {
                for (k, v) in info {
                    claims.entry(k).or_insert(v);
                }
            }
            self.user_from_claims(claims, Some(access), refresh)
        })
    }

    fn verify_id_token<'a>(&'a self, id_token: &'a str, nonce: Option<&'a str>) -> ProviderFuture<'a, ProviderUser> {
        Box::pin(async move {
            let claims = self.verify(id_token, nonce).await?;
            self.user_from_claims(claims, None, None)
        })
    }
}
