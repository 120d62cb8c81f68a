//! Project keys: the JWT secret, the optional asymmetric signing keys, and the API keys
//! derived from them.
//!
//! User sessions are signed with the current [`SigningKey`] (ES256 or RS256, with its `kid`)
//! when there is one, as Supabase projects with asymmetric JWT signing keys are; the public
//! halves of the current, standby and previous keys are published by [`ProjectKeys::jwks`],
//! so clients can verify tokens locally across a rotation. HS256 tokens signed with the
//! shared secret are still accepted (Supabase's legacy secret), and the API keys stay HS256.
//!
//! API keys follow Supabase:
//! - `anon` and `service_role` JWTs, HS256-signed with the project secret;
//! - opaque `sb_publishable_...` and `sb_secret_...` keys mapped to those roles.
//!
//! All four are derived deterministically from the secret and the project ref, so every
//! stateless instance of a server that shares the secret hands out and accepts the same keys.
//! Rotating the secret rotates every key.
//!
//! ## Managed keys
//!
//! A control plane that creates and revokes keys one at a time hands the project its set with
//! [`ProjectKeysBuilder::api_keys`]. The project's keys are then *managed*:
//! - only the keys in the set are accepted as API keys (in `apikey` or as `Bearer sb_...`);
//!   the derived keys are accepted only when they are in the set
//!   ([`ProjectKeys::derived_api_keys`] lists them, so a new project can start with them);
//! - a JWT that verifies and looks like an API key (`iss` `forge`, or `supabase` for keys
//!   imported from Supabase, and role `anon` or `service_role`) is refused unless it is in
//!   the set, wherever it is presented (`apikey`, `Authorization: Bearer`, or
//!   [`ProjectKeys::verify_jwt`]), so revoking a legacy JWT key takes effect everywhere;
//! - user sessions and other tokens (any other `iss`) are verified as before.
//!
//! Keys are looked up by the SHA-256 digest of the presented value, in a hash map: one lookup
//! whatever the size of the set, and no byte-by-byte comparison of a secret with the presented
//! value. New keys come from [`generate_opaque_key`] and [`ProjectKeys::mint_api_jwt`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_lc_rs::{digest, hmac, rand as lc_rand, signature};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;

use crate::error::{AuthError, ErrorCode};
use crate::principal::{Claims, Principal};
use crate::project::ProjectRef;

/// The shortest JWT secret accepted (HS256 needs at least 256 bits).
pub const MIN_SECRET_LEN: usize = 32;
/// The most clock skew ever tolerated on `exp` and `nbf`.
pub const MAX_LEEWAY: Duration = Duration::from_secs(60);
/// Authentication headers longer than this are refused before any parsing.
pub const MAX_AUTH_HEADER_LEN: usize = 8 * 1024;

/// `iat` of derived API-key JWTs (2026-01-01T00:00:00Z); fixed so the keys are deterministic.
const API_KEY_IAT: i64 = 1_767_225_600;
/// `exp` of derived API-key JWTs (2100-01-01T00:00:00Z).
const API_KEY_EXP: i64 = 4_102_444_800;
const PUBLISHABLE_PREFIX: &str = "sb_publishable_";
const SECRET_PREFIX: &str = "sb_secret_";
/// `iss` of the API-key JWTs Forge derives and mints.
const API_KEY_ISSUER: &str = "forge";
/// The `iss` values of API-key JWTs: Forge's, and Supabase's for keys imported from Supabase.
const API_KEY_ISSUERS: [&str; 2] = [API_KEY_ISSUER, "supabase"];
/// How long a JWT from [`ProjectKeys::mint_api_jwt`] lives: ten (Julian) years.
const MINTED_API_KEY_LIFETIME: i64 = 10 * 31_557_600;
/// Random bytes in a generated opaque key (32 base64url characters).
const OPAQUE_KEY_BYTES: usize = 24;

/// Errors building a key set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The HS256 secret is too short.
    #[error("the JWT secret must be at least {MIN_SECRET_LEN} bytes, got {0}")]
    SecretTooShort(usize),
    /// The ES256 key could not be parsed or generated.
    #[error("invalid ES256 key: {0}")]
    InvalidSigningKey(String),
    /// Signing failed.
    #[error("could not sign a token: {0}")]
    Signing(String),
    /// A JWT was asked for a kind of API key that is opaque.
    #[error("{0} API keys are opaque, not JWTs")]
    NotJwtKind(ApiKeyKind),
    /// A key of a managed set does not fit its kind or this project. The reason never
    /// includes the key.
    #[error("invalid {kind} API key: {reason}")]
    InvalidApiKey {
        /// The kind the key was given as.
        kind: ApiKeyKind,
        /// What is wrong with it.
        reason: String,
    },
}

/// The kinds of API keys a project has, as Supabase names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiKeyKind {
    /// An opaque `sb_publishable_...` key: the anon role, safe to ship in browsers.
    Publishable,
    /// An opaque `sb_secret_...` key: the service role.
    Secret,
    /// A legacy anon JWT.
    Anon,
    /// A legacy service_role JWT.
    ServiceRole,
}

impl ApiKeyKind {
    /// Every kind.
    pub const ALL: [ApiKeyKind; 4] = [Self::Publishable, Self::Secret, Self::Anon, Self::ServiceRole];

    /// The role requests with a key of this kind run as: `anon` or `service_role`.
    pub fn role(self) -> &'static str {
        match self {
            Self::Publishable | Self::Anon => "anon",
            Self::Secret | Self::ServiceRole => "service_role",
        }
    }

    /// The stable name: `publishable`, `secret`, `legacy_anon` or `legacy_service_role`
    /// (parsed back by [`str::parse`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Publishable => "publishable",
            Self::Secret => "secret",
            Self::Anon => "legacy_anon",
            Self::ServiceRole => "legacy_service_role",
        }
    }

    /// Whether keys of this kind are JWTs ([`ApiKeyKind::Anon`], [`ApiKeyKind::ServiceRole`]).
    pub fn is_jwt(self) -> bool {
        matches!(self, Self::Anon | Self::ServiceRole)
    }
}

impl std::fmt::Display for ApiKeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ApiKeyKind {
    type Err = ParseApiKeyKindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or(ParseApiKeyKindError(()))
    }
}

/// A string that is not the name of an [`ApiKeyKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown API key kind; expected publishable, secret, legacy_anon or legacy_service_role")]
pub struct ParseApiKeyKindError(());

/// One API key of a managed set (see [`ProjectKeysBuilder::api_keys`]). Its `Debug` shows
/// the kind only.
#[derive(Clone)]
#[non_exhaustive]
pub struct ApiKey {
    /// What kind of key it is.
    pub kind: ApiKeyKind,
    /// The key as clients send it.
    pub value: SecretString,
}

impl ApiKey {
    /// A key of `kind` with this value.
    pub fn new(kind: ApiKeyKind, value: impl Into<SecretString>) -> Self {
        Self { kind, value: value.into() }
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey").field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// A fresh random opaque key: `sb_publishable_` or `sb_secret_` and 32 base64url characters;
/// `None` for the JWT kinds (see [`ProjectKeys::mint_api_jwt`]).
pub fn generate_opaque_key(kind: ApiKeyKind) -> Option<SecretString> {
    let prefix = match kind {
        ApiKeyKind::Publishable => PUBLISHABLE_PREFIX,
        ApiKeyKind::Secret => SECRET_PREFIX,
        ApiKeyKind::Anon | ApiKeyKind::ServiceRole => return None,
    };
    let mut bytes = [0u8; OPAQUE_KEY_BYTES];
    lc_rand::fill(&mut bytes).expect("the system random source failed");
    Some(SecretString::from(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))))
}

/// The SHA-256 of a key, by which managed keys are found.
type KeyDigest = [u8; 32];

fn key_digest(value: &str) -> KeyDigest {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, value.as_bytes()).as_ref());
    out
}

/// A key of a managed set, found by its digest.
struct ManagedKey {
    kind: ApiKeyKind,
    /// The claims of a JWT key (verified when the set was built) and its `exp`.
    jwt: Option<(Claims, i64)>,
}

impl ManagedKey {
    /// The principal the key stands for, or the error of an expired JWT key.
    fn principal(&self, leeway: Duration) -> Result<Principal, AuthError> {
        let Some((claims, exp)) = &self.jwt else {
            return Ok(match self.kind.role() {
                "service_role" => Principal::service(),
                _ => Principal::anon(),
            });
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let leeway = i64::try_from(leeway.as_secs()).unwrap_or(0);
        if now > exp.saturating_add(leeway) {
            return Err(AuthError::new(ErrorCode::JwtExpired));
        }
        Ok(match self.kind {
            ApiKeyKind::ServiceRole => Principal::Service(claims.clone()),
            _ => Principal::Anon(claims.clone()),
        })
    }
}

/// Whether verified claims look like an API key rather than a session: an API-key issuer
/// and an API-key role.
fn is_api_key_claims(claims: &Claims) -> bool {
    claims.get("iss").and_then(Value::as_str).is_some_and(|iss| API_KEY_ISSUERS.contains(&iss))
        && matches!(claims.role(), Some("anon" | "service_role"))
}

/// How tokens are verified: [`VerifyConfig::default`] and setters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifyConfig {
    /// The audience user tokens must name (default `authenticated`).
    pub audience: String,
    /// Clock-skew leeway on `exp` and `nbf`; clamped to [`MAX_LEEWAY`].
    pub leeway: Duration,
    /// Whether a request with no key at all is served as anon. Off by default: like the
    /// Supabase gateway, Forge wants an `apikey`.
    pub allow_keyless_anon: bool,
    /// Database roles a token's `role` claim may name besides [`API_ROLES`]. A token naming
    /// any other role (`postgres`, `pg_read_all_data`, ...) is refused with
    /// [`ErrorCode::JwtRoleNotAllowed`], whoever signed it: the project's secret or signing
    /// key, a custom access token hook, or a third-party issuer.
    pub extra_roles: Vec<String>,
}

/// The roles every project lets a token switch to: Supabase's API roles.
pub const API_ROLES: [&str; 3] = ["anon", "authenticated", "service_role"];

impl Default for VerifyConfig {
    fn default() -> Self {
        Self {
            audience: "authenticated".into(),
            leeway: Duration::from_secs(30),
            allow_keyless_anon: false,
            extra_roles: Vec::new(),
        }
    }
}

impl VerifyConfig {
    /// With the audience user tokens must name.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// With the clock-skew leeway on `exp` and `nbf` (clamped to [`MAX_LEEWAY`]).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// With requests that carry no key at all served as anon, or not.
    pub fn with_allow_keyless_anon(mut self, allow: bool) -> Self {
        self.allow_keyless_anon = allow;
        self
    }

    /// With these roles allowed in a token's `role` claim besides [`API_ROLES`] (replacing
    /// any set before). Grant each to the role Forge connects as, as PostgREST needs.
    pub fn with_extra_roles(mut self, roles: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.extra_roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// Whether a token may name `role`: one of [`API_ROLES`] or of the extra roles.
    pub fn allows_role(&self, role: &str) -> bool {
        API_ROLES.contains(&role) || self.extra_roles.iter().any(|r| r == role)
    }

    /// Refuses a `role` claim this project does not let requests switch to, in the words
    /// Postgres uses when the connecting role may not `SET ROLE` to it (what PostgREST
    /// answers on Supabase, where the API's login role is granted only the API roles).
    pub fn check_role(&self, role: Option<&str>) -> Result<(), AuthError> {
        match role {
            Some(r) if !self.allows_role(r) => Err(AuthError::with_message(
                ErrorCode::JwtRoleNotAllowed,
                format!("permission denied to set role \"{r}\""),
            )),
            _ => Ok(()),
        }
    }
}

/// An asymmetric JWT signing key, ES256 (P-256) or RS256 (RSA, 2048 bits or more), from its
/// PKCS#8 form; its public half is published as a JWK with a `kid` derived from it.
#[derive(Clone)]
pub struct SigningKey {
    alg: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("alg", &self.alg).field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A key from PKCS#8 DER: a P-256 key signs ES256, an RSA key RS256.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        if let Ok(pair) = signature::EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            return es256_from_pair(&pair, der);
        }
        match aws_lc_rs::rsa::KeyPair::from_pkcs8(der) {
            Ok(pair) => rs256_from_pair(&pair, der),
            Err(e) => Err(KeyError::InvalidSigningKey(format!(
                "not a PKCS#8 P-256 or RSA private key ({e}); convert one with `openssl pkcs8 -topk8 -nocrypt`"
            ))),
        }
    }

    /// A key from a PKCS#8 PEM document (`-----BEGIN PRIVATE KEY-----`), as
    /// `openssl genpkey` writes it.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        Self::from_pkcs8_der(&pem_to_der(pem)?)
    }

    /// The key id published in the JWKS and put in the `kid` header of the tokens it signs.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `ES256` or `RS256`.
    pub fn algorithm(&self) -> &'static str {
        match self.alg {
            Algorithm::RS256 => "RS256",
            _ => "ES256",
        }
    }

    /// The public key as a JWK (`use: sig`, `key_ops: [verify]`).
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }
}

/// Which asymmetric algorithm to generate a key for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 with SHA-256 (Supabase's default for new signing keys).
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    Rs256,
}

/// Generates a fresh signing key as PKCS#8 DER.
pub fn generate_signing_key_pkcs8(alg: KeyAlgorithm) -> Result<Vec<u8>, KeyError> {
    match alg {
        KeyAlgorithm::Es256 => generate_es256_pkcs8(),
        KeyAlgorithm::Rs256 => {
            use aws_lc_rs::encoding::AsDer as _;
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|e| KeyError::InvalidSigningKey(e.to_string()))?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
                pair.as_der().map_err(|e| KeyError::InvalidSigningKey(e.to_string()))?;
            Ok(der.as_ref().to_vec())
        }
    }
}

/// PKCS#8 DER as a PEM document (`-----BEGIN PRIVATE KEY-----`).
pub fn pkcs8_pem(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>, KeyError> {
    let pem = pem.trim();
    let body = pem
        .strip_prefix("-----BEGIN PRIVATE KEY-----")
        .and_then(|rest| rest.trim_end().strip_suffix("-----END PRIVATE KEY-----"))
        .ok_or_else(|| {
            KeyError::InvalidSigningKey(
                "expected a PKCS#8 PEM key (-----BEGIN PRIVATE KEY-----); convert one with `openssl pkcs8 -topk8 -nocrypt`"
                    .into(),
            )
        })?;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| KeyError::InvalidSigningKey(format!("PEM body: {e}")))
}

struct Inner {
    reference: ProjectRef,
    hs_encoding: EncodingKey,
    hs_decoding: DecodingKey,
    /// Signs user sessions (the current key), when there is one.
    signing: Option<SigningKey>,
    /// Published and accepted but not signing: the standby and previous keys.
    verifying: Vec<SigningKey>,
    anon_key: String,
    anon_claims: Claims,
    service_key: SecretString,
    service_claims: Claims,
    publishable_key: String,
    secret_key: SecretString,
    verify: VerifyConfig,
    third_party: Option<Arc<ThirdPartyIssuer>>,
    verified: VerifiedTokens,
    /// The managed keys by digest, when the project's keys are managed.
    managed: Option<HashMap<KeyDigest, ManagedKey>>,
}

/// Tokens already verified with this project's own keys, with their claims, until they
/// expire. A session sends the same access token for up to an hour, so most requests skip
/// the signature check and the claims parsing. Only successful verifications are kept, so
/// callers cannot fill it with garbage; it is emptied when full.
#[derive(Default)]
struct VerifiedTokens(std::sync::Mutex<std::collections::HashMap<Box<str>, (Claims, i64)>>);

/// The most tokens kept at once.
const VERIFIED_CAPACITY: usize = 10_000;

impl VerifiedTokens {
    fn get(&self, token: &str, leeway: Duration) -> Option<Claims> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (claims, exp) = map.get(token)?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
        let leeway = leeway.as_secs();
        (i64::try_from(now).ok()? <= exp.saturating_add(i64::try_from(leeway).ok()?)).then(|| claims.clone())
    }

    fn put(&self, token: &str, claims: Claims, exp: i64) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= VERIFIED_CAPACITY {
            map.clear();
        }
        map.insert(token.into(), (claims, exp));
    }
}

/// A project's keys. Cheap to clone.
#[derive(Clone)]
pub struct ProjectKeys(Arc<Inner>);

impl std::fmt::Debug for ProjectKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectKeys")
            .field("ref", &self.0.reference)
            .field("anon_key", &self.0.anon_key)
            .field("publishable_key", &self.0.publishable_key)
            .field("signing_kid", &self.0.signing.as_ref().map(|k| &k.kid))
            .field("verifying_kids", &self.0.verifying.iter().map(|k| &k.kid).collect::<Vec<_>>())
            .field("managed_keys", &self.0.managed.as_ref().map(HashMap::len))
            .finish_non_exhaustive()
    }
}

/// Builds a [`ProjectKeys`].
#[derive(Debug)]
pub struct ProjectKeysBuilder {
    reference: ProjectRef,
    secret: SecretSlice<u8>,
    es256_pkcs8: Option<SecretSlice<u8>>,
    signing: Option<SigningKey>,
    verifying: Vec<SigningKey>,
    verify: VerifyConfig,
    third_party: Option<Arc<ThirdPartyIssuer>>,
    api_keys: Option<Vec<ApiKey>>,
}

impl ProjectKeysBuilder {
    /// Makes the project's API keys managed: only these keys are accepted (see the
    /// [module docs](self#managed-keys)), even when the list is empty, which refuses every
    /// API key. Calling it again adds to the set.
    ///
    /// [`ProjectKeysBuilder::build`] checks each key: an opaque key must have its kind's
    /// prefix; a JWT key must be signed with the project's secret (HS256), carry `exp`, name
    /// its kind's role, an API-key issuer (`forge` or `supabase`) and, if it names a `ref`,
    /// this project.
    pub fn api_keys(mut self, keys: impl IntoIterator<Item = ApiKey>) -> Self {
        self.api_keys.get_or_insert_with(Vec::new).extend(keys);
        self
    }

    /// Also accepts tokens from an external identity provider (their keys are kept current
    /// by whoever holds the [`ThirdPartyIssuer`]).
    pub fn third_party(mut self, issuer: Arc<ThirdPartyIssuer>) -> Self {
        self.third_party = Some(issuer);
        self
    }

    /// Adds an ES256 signing key (PKCS#8 DER). Its public half is published by [`ProjectKeys::jwks`].
    pub fn es256_pkcs8(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.es256_pkcs8 = Some(der.into().into());
        self
    }

    /// Signs user sessions with `key` (the current key) instead of the HS256 secret. Its
    /// public half is published by [`ProjectKeys::jwks`].
    pub fn signing_key(mut self, key: SigningKey) -> Self {
        self.signing = Some(key);
        self
    }

    /// Also publishes and accepts `key` without signing with it: a standby key (about to
    /// become current, published ahead so clients' cached key sets know it) or a previous one
    /// (its tokens still verify until they expire).
    pub fn verification_key(mut self, key: SigningKey) -> Self {
        self.verifying.push(key);
        self
    }

    /// Sets how tokens are verified.
    pub fn verify(mut self, verify: VerifyConfig) -> Self {
        self.verify = verify;
        self
    }

    /// Derives the API keys and prepares the verification keys.
    pub fn build(self) -> Result<ProjectKeys, KeyError> {
        let secret = self.secret.expose_secret();
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::SecretTooShort(secret.len()));
        }
        let mut verify = self.verify;
        verify.leeway = verify.leeway.min(MAX_LEEWAY);
        let hs_encoding = EncodingKey::from_secret(secret);
        let hs_decoding = DecodingKey::from_secret(secret);
        let es256 = self.es256_pkcs8.map(|der| SigningKey::from_pkcs8_der(der.expose_secret())).transpose()?;
        let signing = es256.or(self.signing);
        let mut verifying = self.verifying;
        // A key named twice (say the standby given as current too) is published once.
        verifying.retain(|k| signing.as_ref().is_none_or(|s| s.kid != k.kid));
        let mut seen = std::collections::HashSet::new();
        verifying.retain(|k| seen.insert(k.kid.clone()));

        let api_jwt = |role: &str| -> Result<String, KeyError> {
            let claims = json!({
                "iss": "forge", "ref": self.reference.as_str(), "role": role,
                "iat": API_KEY_IAT, "exp": API_KEY_EXP,
            });
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &hs_encoding)
                .map_err(|e| KeyError::Signing(e.to_string()))
        };
        let anon_key = api_jwt("anon")?;
        let service_key = api_jwt("service_role")?;
        // The project's own keys are recognised by comparison; their claims are decoded once.
        let claims_of = |token: &str| -> Result<Claims, KeyError> {
            let payload = token.split('.').nth(1).unwrap_or("");
            let raw = URL_SAFE_NO_PAD.decode(payload).map_err(|e| KeyError::Signing(e.to_string()))?;
            serde_json::from_slice::<Map<String, Value>>(&raw)
                .map(Claims::new)
                .map_err(|e| KeyError::Signing(e.to_string()))
        };
        let anon_claims = claims_of(&anon_key)?;
        let service_claims = claims_of(&service_key)?;
        let service_key = SecretString::from(service_key);
        let publishable_key = format!("{PUBLISHABLE_PREFIX}{}", derive_opaque(secret, "publishable", &self.reference));
        let secret_key =
            SecretString::from(format!("{SECRET_PREFIX}{}", derive_opaque(secret, "secret", &self.reference)));
        let managed = self.api_keys.map(|keys| managed_keys(keys, &self.reference, &hs_decoding)).transpose()?;

        Ok(ProjectKeys(Arc::new(Inner {
            reference: self.reference,
            hs_encoding,
            hs_decoding,
            signing,
            verifying,
            anon_key,
            anon_claims,
            service_key,
            service_claims,
            publishable_key,
            secret_key,
            verify,
            third_party: self.third_party,
            verified: VerifiedTokens::default(),
            managed,
        })))
    }
}

/// The managed set by digest, each key checked against its kind and the project.
fn managed_keys(
    keys: Vec<ApiKey>,
    reference: &ProjectRef,
    hs_decoding: &DecodingKey,
) -> Result<HashMap<KeyDigest, ManagedKey>, KeyError> {
    let mut map = HashMap::with_capacity(keys.len());
    for key in keys {
        let kind = key.kind;
        let invalid = |reason: &str| KeyError::InvalidApiKey { kind, reason: reason.into() };
        let value = key.value.expose_secret();
        let jwt = match kind {
            ApiKeyKind::Publishable | ApiKeyKind::Secret => {
                let prefix = if kind == ApiKeyKind::Publishable { PUBLISHABLE_PREFIX } else { SECRET_PREFIX };
                if value.len() <= prefix.len() || !value.starts_with(prefix) {
                    return Err(invalid(&format!("expected {prefix}...")));
                }
                None
            }
            ApiKeyKind::Anon | ApiKeyKind::ServiceRole => {
                let mut validation = Validation::new(Algorithm::HS256);
                validation.validate_exp = false; // an expired key is refused when presented
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["exp"]);
                let data = jsonwebtoken::decode::<Map<String, Value>>(value, hs_decoding, &validation)
                    .map_err(|e| invalid(&format!("not an HS256 JWT of this project's secret ({e})")))?;
                let claims = Claims::new(data.claims);
                if claims.role() != Some(kind.role()) {
                    return Err(invalid(&format!("its role claim must be {}", kind.role())));
                }
                if !is_api_key_claims(&claims) {
                    return Err(invalid("its iss claim must be forge or supabase"));
                }
                if claims.get("ref").is_some_and(|r| r.as_str() != Some(reference.as_str())) {
                    return Err(invalid("it was minted for another project"));
                }
                let exp = claims.get("exp").and_then(Value::as_i64).ok_or_else(|| invalid("exp must be an integer"))?;
                Some((claims, exp))
            }
        };
        map.insert(key_digest(value), ManagedKey { kind, jwt });
    }
    Ok(map)
}

fn derive_opaque(secret: &[u8], purpose: &str, reference: &ProjectRef) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, format!("forge/api-key/{purpose}/{}", reference.as_str()).as_bytes());
    URL_SAFE_NO_PAD.encode(&tag.as_ref()[..24])
}

fn es256_from_pair(pair: &signature::EcdsaKeyPair, der: &[u8]) -> Result<SigningKey, KeyError> {
    use signature::KeyPair as _;
    let point = pair.public_key().as_ref();
    // An uncompressed P-256 point: 0x04 || x (32 bytes) || y (32 bytes).
    if point.len() != 65 || point[0] != 4 {
        return Err(KeyError::InvalidSigningKey("unexpected public key encoding".into()));
    }
    let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
    let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
    let kid = key_id(point);
    let decoding = DecodingKey::from_ec_components(&x, &y).map_err(|e| KeyError::InvalidSigningKey(e.to_string()))?;
    let jwk = json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y, "alg": "ES256", "use": "sig", "kid": kid, "key_ops": ["verify"] });
    Ok(SigningKey { alg: Algorithm::ES256, encoding: EncodingKey::from_ec_der(der), decoding, kid, jwk })
}

fn rs256_from_pair(pair: &aws_lc_rs::rsa::KeyPair, der: &[u8]) -> Result<SigningKey, KeyError> {
    use signature::KeyPair as _;
    let public = pair.public_key();
    if public.modulus_len() < 256 {
        return Err(KeyError::InvalidSigningKey("RSA signing keys must have at least 2048 bits".into()));
    }
    let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
    let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
    let kid = key_id(public.as_ref());
    let decoding = DecodingKey::from_rsa_components(&n, &e).map_err(|e| KeyError::InvalidSigningKey(e.to_string()))?;
    // jsonwebtoken signs RSA from the PKCS#1 key inside the PKCS#8 document, which its PEM
    // reader extracts.
    let encoding =
        EncodingKey::from_rsa_pem(pkcs8_pem(der).as_bytes()).map_err(|e| KeyError::InvalidSigningKey(e.to_string()))?;
    let jwk = json!({ "kty": "RSA", "n": n, "e": e, "alg": "RS256", "use": "sig", "kid": kid, "key_ops": ["verify"] });
    Ok(SigningKey { alg: Algorithm::RS256, encoding, decoding, kid, jwk })
}

/// A key id: the first 96 bits of the public key's SHA-256, base64url.
fn key_id(public: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(&digest::digest(&digest::SHA256, public).as_ref()[..12])
}

/// Generates a fresh random secret of `len` bytes (at least [`MIN_SECRET_LEN`]).
pub fn generate_secret(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len.max(MIN_SECRET_LEN)];
    lc_rand::fill(&mut bytes).expect("the system random source failed");
    bytes
}

/// Generates a fresh ES256 signing key as PKCS#8 DER.
pub fn generate_es256_pkcs8() -> Result<Vec<u8>, KeyError> {
    let doc = signature::EcdsaKeyPair::generate_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &lc_rand::SystemRandom::new(),
    )
    .map_err(|e| KeyError::InvalidSigningKey(e.to_string()))?;
    Ok(doc.as_ref().to_vec())
}

impl ProjectKeys {
    /// Starts a key set for `reference` from its HS256 secret.
    pub fn builder(reference: ProjectRef, jwt_secret: impl Into<Vec<u8>>) -> ProjectKeysBuilder {
        ProjectKeysBuilder {
            reference,
            secret: jwt_secret.into().into(),
            es256_pkcs8: None,
            signing: None,
            verifying: Vec::new(),
            verify: VerifyConfig::default(),
            third_party: None,
            api_keys: None,
        }
    }

    /// The derived anon API key (a JWT; safe to ship in browsers). When the keys are
    /// [managed](ProjectKeys::is_managed) it is accepted only if it is in the set.
    pub fn anon_key(&self) -> &str {
        &self.0.anon_key
    }

    /// The derived service-role API key (a JWT that bypasses RLS; keep it secret). When the
    /// keys are [managed](ProjectKeys::is_managed) it is accepted only if it is in the set.
    pub fn service_key(&self) -> &SecretString {
        &self.0.service_key
    }

    /// The derived opaque publishable key (`sb_publishable_...`), equivalent to the anon key.
    /// When the keys are [managed](ProjectKeys::is_managed) it is accepted only if it is in
    /// the set.
    pub fn publishable_key(&self) -> &str {
        &self.0.publishable_key
    }

    /// The derived opaque secret key (`sb_secret_...`), equivalent to the service key. When
    /// the keys are [managed](ProjectKeys::is_managed) it is accepted only if it is in the
    /// set.
    pub fn secret_key(&self) -> &SecretString {
        &self.0.secret_key
    }

    /// The four derived keys (publishable, secret, anon, service_role), whether or not they
    /// are accepted: a control plane records them as a new project's first managed keys, so
    /// the project's default keys stay the same.
    pub fn derived_api_keys(&self) -> Vec<ApiKey> {
        vec![
            ApiKey::new(ApiKeyKind::Publishable, self.0.publishable_key.as_str()),
            ApiKey::new(ApiKeyKind::Secret, self.0.secret_key.clone()),
            ApiKey::new(ApiKeyKind::Anon, self.0.anon_key.as_str()),
            ApiKey::new(ApiKeyKind::ServiceRole, self.0.service_key.clone()),
        ]
    }

    /// Whether only a managed set of keys is accepted (see [`ProjectKeysBuilder::api_keys`]).
    pub fn is_managed(&self) -> bool {
        self.0.managed.is_some()
    }

    /// A fresh legacy JWT key of `kind` (anon or service_role), HS256-signed with the
    /// project's secret: claims `iss` `forge`, `ref`, `role`, `iat` now, `exp` ten years on,
    /// and `jti` the control plane's id for the key (so two keys of one kind differ).
    /// [`KeyError::NotJwtKind`] for the opaque kinds (see [`generate_opaque_key`]).
    pub fn mint_api_jwt(&self, kind: ApiKeyKind, key_id: &str) -> Result<String, KeyError> {
        if !kind.is_jwt() {
            return Err(KeyError::NotJwtKind(kind));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| KeyError::Signing(e.to_string()))?
            .as_secs();
        let now = i64::try_from(now).map_err(|e| KeyError::Signing(e.to_string()))?;
        let claims = json!({
            "iss": API_KEY_ISSUER, "ref": self.0.reference.as_str(), "role": kind.role(),
            "iat": now, "exp": now.saturating_add(MINTED_API_KEY_LIFETIME), "jti": key_id,
        });
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.0.hs_encoding)
            .map_err(|e| KeyError::Signing(e.to_string()))
    }

    /// The managed key with this value, if the keys are managed and it is one of them.
    fn managed_key(&self, key: &str) -> Option<&ManagedKey> {
        self.0.managed.as_ref()?.get(&key_digest(key))
    }

    /// The verification settings.
    pub fn verify_config(&self) -> &VerifyConfig {
        &self.0.verify
    }

    /// The public signing keys as a JWKS document (`{"keys": [...]}`): the current key, then
    /// the standby and previous ones; empty without asymmetric keys (the HS256 secret is never
    /// published).
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self.0.signing.iter().chain(&self.0.verifying).map(|k| k.jwk.clone()).collect();
        json!({ "keys": keys })
    }

    /// The current signing key, if user sessions are signed asymmetrically.
    pub fn current_signing_key(&self) -> Option<&SigningKey> {
        self.0.signing.as_ref()
    }

    /// Signs `claims`: with the current signing key (and its `kid`) when there is one, else
    /// HS256.
    pub fn sign(&self, claims: &Map<String, Value>) -> Result<String, KeyError> {
        let (header, key) = match &self.0.signing {
            Some(k) => {
                let mut h = Header::new(k.alg);
                h.kid = Some(k.kid.clone());
                (h, &k.encoding)
            }
            None => (Header::new(Algorithm::HS256), &self.0.hs_encoding),
        };
        jsonwebtoken::encode(&header, claims, key).map_err(|e| KeyError::Signing(e.to_string()))
    }

    /// The project's own asymmetric key for a token's `alg` and `kid`: the key of that
    /// algorithm with that id, or the only one of that algorithm when the token names none.
    fn own_signing_key(&self, alg: Algorithm, kid: Option<&str>) -> Option<&SigningKey> {
        let mut of_alg = self.0.signing.iter().chain(&self.0.verifying).filter(|k| k.alg == alg);
        match kid {
            Some(kid) => of_alg.find(|k| k.kid == kid),
            None => match (of_alg.next(), of_alg.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            },
        }
    }

    /// Signs `claims` with the HS256 secret, whatever else is configured.
    pub fn sign_hs256(&self, claims: &Map<String, Value>) -> Result<String, KeyError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.0.hs_encoding)
            .map_err(|e| KeyError::Signing(e.to_string()))
    }

    /// Verifies a JWT and returns its claims.
    ///
    /// Only HS256 (and ES256 when configured) are accepted, never `none`. `exp` is required;
    /// `exp` and `nbf` are checked with the configured leeway (at most 60 s). Tokens whose role
    /// is not an API-key role (`anon`, `service_role`) must name the audience. When the keys
    /// are [managed](ProjectKeys::is_managed), a token signed with the project's keys that
    /// looks like an API key (`iss` `forge` or `supabase`, role `anon` or `service_role`) is
    /// refused with [`ErrorCode::InvalidApiKey`] unless it is in the set.
    pub fn verify_jwt(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify_with(token, true)
    }

    /// Like [`ProjectKeys::verify_jwt`], but only for tokens signed with this project's own
    /// keys: a trusted third-party issuer's tokens are refused. Auth's own endpoints use it,
    /// since an external user is not a user of this project's auth service.
    pub fn verify_own_jwt(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify_with(token, false)
    }

    fn verify_with(&self, token: &str, third_party: bool) -> Result<Claims, AuthError> {
        if token.is_empty() {
            return Err(AuthError::with_message(ErrorCode::InvalidJwt, "Empty JWT is sent in Authorization header"));
        }
        if let Some(claims) = self.0.verified.get(token, self.0.verify.leeway) {
            return Ok(claims);
        }
        let parts = token.split('.').count();
        if parts != 3 {
            return Err(AuthError::with_message(
                ErrorCode::InvalidJwt,
                format!("Expected 3 parts in JWT; got {parts}"),
            ));
        }
        let (alg, kid) = header_alg(token)?;
        // The key is chosen by the header's alg and kid, and each key verifies only its own
        // algorithm: an HS256 token is checked against the secret alone (so one "signed" with
        // a public key fails), an ES256 or RS256 one against the project's key of that type.
        let own = match alg {
            Algorithm::ES256 | Algorithm::RS256 => self.own_signing_key(alg, kid.as_deref()),
            _ => None,
        };
        let external = self.0.third_party.as_ref().filter(|_| third_party);
        let key = match (alg, own, external) {
            (Algorithm::HS256, _, _) => &self.0.hs_decoding,
            (_, Some(k), _) => &k.decoding,
            (_, _, Some(external)) => {
                let claims = external.verify(token, alg, kid.as_deref(), &self.0.verify)?;
                self.0.verify.check_role(claims.role())?;
                return Ok(claims);
            }
            _ => return Err(AuthError::new(ErrorCode::JwtAlgorithmNotAllowed)),
        };
        let mut validation = Validation::new(alg);
        validation.leeway = self.0.verify.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false; // checked below: API-key tokens carry no audience
        validation.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation).map_err(map_jwt_error)?;
        let claims = data.claims;

        let role = match claims.get("role") {
            None => None,
            Some(Value::String(r)) if is_valid_role(r) => Some(r.as_str()),
            Some(_) => {
                return Err(AuthError::with_message(ErrorCode::JwtBadClaims, "The JWT role claim is invalid"));
            }
        };
        // The one place a token's role is accepted, so every service refuses the same roles.
        self.0.verify.check_role(role)?;
        let is_key_role = matches!(role, None | Some("anon") | Some("service_role"));
        if !is_key_role && !audience_matches(claims.get("aud"), &self.0.verify.audience) {
            return Err(AuthError::new(ErrorCode::JwtBadAudience));
        }
        let exp = claims.get("exp").and_then(Value::as_i64);
        let claims = Claims::new(claims);
        // With managed keys, a token shaped like an API key is one only while it is in the set:
        // a revoked legacy key is refused here, so wherever it is presented.
        if let Some(managed) = &self.0.managed
            && is_api_key_claims(&claims)
            && !managed.contains_key(&key_digest(token))
        {
            return Err(AuthError::new(ErrorCode::InvalidApiKey));
        }
        if let Some(exp) = exp {
            self.0.verified.put(token, claims.clone(), exp);
        }
        Ok(claims)
    }

    /// Decides who is calling, from the `apikey` and `Authorization` header values.
    ///
    /// The rule is the Supabase gateway's (SUPABASE-WIRE.md §A):
    /// - an `apikey`, when sent, must be one of this project's keys;
    /// - an `Authorization: Bearer <jwt>` (not `Bearer sb_...`) decides the principal;
    /// - otherwise the API key decides it (`Bearer sb_...` counts as an API key).
    ///
    /// With [managed](ProjectKeys::is_managed) keys an API key must be in the set, and so
    /// must a bearer JWT that looks like an API key (see [`ProjectKeys::verify_jwt`]).
    pub fn authenticate(&self, apikey: Option<&[u8]>, authorization: Option<&[u8]>) -> Result<Principal, AuthError> {
        for value in [apikey, authorization].into_iter().flatten() {
            if value.len() > MAX_AUTH_HEADER_LEN {
                return Err(AuthError::new(ErrorCode::HeaderTooLarge));
            }
        }
        let apikey = apikey
            .map(|v| std::str::from_utf8(v).map(str::trim).map_err(|_| AuthError::new(ErrorCode::InvalidApiKey)))
            .transpose()?
            .filter(|k| !k.is_empty());
        let bearer = authorization.map(parse_bearer).transpose()?;

        let key_principal = apikey.map(|k| self.api_key_principal(k)).transpose()?;
        match bearer {
            Some(token) if !token.starts_with("sb_") => self.token_principal(token),
            Some(token) => match key_principal {
                Some(p) => Ok(p),
                None => self.api_key_principal(token),
            },
            None => match key_principal {
                Some(p) => Ok(p),
                None if self.0.verify.allow_keyless_anon => Ok(Principal::anon()),
                None => Err(AuthError::new(ErrorCode::NoApiKey)),
            },
        }
    }

    /// The principal for one of this project's own JWT keys, recognised without re-verifying.
    fn own_key(&self, token: &str) -> Option<Principal> {
        if ct_eq(token, &self.0.anon_key) {
            Some(Principal::Anon(self.0.anon_claims.clone()))
        } else if ct_eq(token, self.0.service_key.expose_secret()) {
            Some(Principal::Service(self.0.service_claims.clone()))
        } else {
            None
        }
    }

    /// The principal an API key stands for.
    fn api_key_principal(&self, key: &str) -> Result<Principal, AuthError> {
        if self.0.managed.is_some() {
            return match self.managed_key(key) {
                Some(managed) => managed.principal(self.0.verify.leeway).map_err(|e| {
                    AuthError::with_message(ErrorCode::InvalidApiKey, format!("Invalid API key: {}", e.message))
                }),
                None => Err(AuthError::new(ErrorCode::InvalidApiKey)),
            };
        }
        if let Some(p) = self.own_key(key) {
            return Ok(p);
        }
        if key.starts_with("sb_") {
            if ct_eq(key, &self.0.publishable_key) {
                return Ok(Principal::anon());
            }
            if ct_eq(key, self.0.secret_key.expose_secret()) {
                return Ok(Principal::service());
            }
            return Err(AuthError::new(ErrorCode::InvalidApiKey));
        }
        // A legacy JWT key: it must verify and carry an API-key role.
        let claims = self.verify_jwt(key).map_err(|e| {
            AuthError::with_message(ErrorCode::InvalidApiKey, format!("Invalid API key: {}", e.message))
        })?;
        // A key minted for another project is refused even if the projects share a secret.
        if claims.get("ref").is_some_and(|r| r.as_str() != Some(self.0.reference.as_str())) {
            return Err(AuthError::new(ErrorCode::InvalidApiKey));
        }
        match claims.role() {
            Some("anon") => Ok(Principal::Anon(claims)),
            Some("service_role") => Ok(Principal::Service(claims)),
            _ => Err(AuthError::new(ErrorCode::InvalidApiKey)),
        }
    }

    fn token_principal(&self, token: &str) -> Result<Principal, AuthError> {
        if self.0.managed.is_some() {
            if let Some(managed) = self.managed_key(token) {
                return managed.principal(self.0.verify.leeway);
            }
        } else if let Some(p) = self.own_key(token) {
            return Ok(p);
        }
        Ok(Principal::from_claims(self.verify_jwt(token)?))
    }
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn parse_bearer(value: &[u8]) -> Result<&str, AuthError> {
    let malformed = || AuthError::new(ErrorCode::MalformedAuthorization);
    let value = std::str::from_utf8(value).map_err(|_| malformed())?.trim();
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed());
    }
    Ok(token.trim())
}

/// The header's `alg` (only the asymmetric ones third-party issuers use, besides HS256 and
/// ES256; never `none`) and `kid`.
fn header_alg(token: &str) -> Result<(Algorithm, Option<String>), AuthError> {
    let header_b64 = token.split('.').next().unwrap_or("");
    let raw =
        URL_SAFE_NO_PAD.decode(header_b64.trim_end_matches('=')).map_err(|_| AuthError::new(ErrorCode::InvalidJwt))?;
    let header: Map<String, Value> = serde_json::from_slice(&raw).map_err(|_| AuthError::new(ErrorCode::InvalidJwt))?;
    let kid = header.get("kid").and_then(Value::as_str).map(str::to_owned);
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some("HS256") => Algorithm::HS256,
        Some("ES256") => Algorithm::ES256,
        Some("ES384") => Algorithm::ES384,
        Some("RS256") => Algorithm::RS256,
        Some("RS384") => Algorithm::RS384,
        Some("RS512") => Algorithm::RS512,
        Some("PS256") => Algorithm::PS256,
        Some("EdDSA") => Algorithm::EdDSA,
        _ => return Err(AuthError::new(ErrorCode::JwtAlgorithmNotAllowed)),
    };
    Ok((alg, kid))
}

/// An external identity provider whose tokens are accepted as `authenticated` (Supabase's
/// "third-party auth"): its issuer, optional audience, and current public keys.
///
/// Its tokens must be signed with one of the published asymmetric keys, name the issuer in
/// `iss` (and the audience in `aud` when one is set), and carry `exp`. A token without a
/// `role` claim runs as `authenticated`; only `authenticated` and `anon` are accepted, so an
/// external issuer can never mint a service-role token.
#[derive(Debug)]
pub struct ThirdPartyIssuer {
    issuer: String,
    audience: Option<String>,
    keys: RwLock<Vec<ExternalKey>>,
}

struct ExternalKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

impl std::fmt::Debug for ExternalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl ThirdPartyIssuer {
    /// An issuer with no keys yet (see [`ThirdPartyIssuer::set_jwks`]).
    pub fn new(issuer: impl Into<String>, audience: Option<String>) -> Arc<Self> {
        Arc::new(Self { issuer: issuer.into(), audience, keys: RwLock::new(Vec::new()) })
    }

    /// The issuer (`iss`) its tokens must name.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Replaces the keys with those of a JWKS document; keys of unusable types are skipped.
    /// Returns how many keys are kept.
    pub fn set_jwks(&self, jwks: &Value) -> Result<usize, KeyError> {
        let set: jsonwebtoken::jwk::JwkSet =
            serde_json::from_value(jwks.clone()).map_err(|e| KeyError::InvalidSigningKey(format!("JWKS: {e}")))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let alg = match jwk.common.key_algorithm.and_then(|a| a.to_string().parse::<Algorithm>().ok()) {
                Some(a) => a,
                None => match &jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                        jsonwebtoken::jwk::EllipticCurve::P256 => Algorithm::ES256,
                        jsonwebtoken::jwk::EllipticCurve::P384 => Algorithm::ES384,
                        _ => continue,
                    },
                    jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                    _ => continue,
                },
            };
            if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                continue; // a symmetric key in a public JWKS is never trusted
            }
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.push(ExternalKey { kid: jwk.common.key_id.clone(), alg, key });
            }
        }
        let n = keys.len();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        Ok(n)
    }

    /// Whether a key with this id is known.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    fn verify(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
        config: &VerifyConfig,
    ) -> Result<Claims, AuthError> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let candidates: Vec<&ExternalKey> =
            keys.iter().filter(|k| k.alg == alg && (kid.is_none() || k.kid.as_deref() == kid)).collect();
        let [key] = candidates.as_slice() else {
            return Err(AuthError::with_message(ErrorCode::JwtBadSignature, "No matching key for this JWT"));
        };
        let mut validation = Validation::new(alg);
        validation.leeway = config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.set_issuer(&[&self.issuer]);
        match &self.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation).map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                    AuthError::with_message(ErrorCode::JwtBadClaims, "JWT issuer is not trusted")
                }
                jsonwebtoken::errors::ErrorKind::InvalidAudience => AuthError::new(ErrorCode::JwtBadAudience),
                _ => map_jwt_error(e),
            })?;
        let mut claims = data.claims;
        match claims.get("role") {
            None => {
                claims.insert("role".into(), Value::String("authenticated".into()));
            }
            Some(Value::String(r)) if r == "authenticated" || r == "anon" => {}
            Some(_) => {
                return Err(AuthError::with_message(
                    ErrorCode::JwtBadClaims,
                    "Third-party tokens may only carry the authenticated or anon role",
                ));
            }
        }
        Ok(Claims::new(claims))
    }
}

fn map_jwt_error(err: jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind as K;
    match err.kind() {
        K::ExpiredSignature => AuthError::new(ErrorCode::JwtExpired),
        K::ImmatureSignature => AuthError::new(ErrorCode::JwtNotYetValid),
        K::InvalidSignature => AuthError::new(ErrorCode::JwtBadSignature),
        K::InvalidAlgorithm | K::InvalidAlgorithmName | K::UnsupportedAlgorithm => {
            AuthError::new(ErrorCode::JwtAlgorithmNotAllowed)
        }
        K::MissingRequiredClaim(c) | K::InvalidClaimFormat(c) => {
            AuthError::with_message(ErrorCode::JwtBadClaims, format!("Parsing claims failed: {c}"))
        }
        _ => AuthError::new(ErrorCode::InvalidJwt),
    }
}

fn audience_matches(aud: Option<&Value>, expected: &str) -> bool {
    match aud {
        Some(Value::String(a)) => a == expected,
        Some(Value::Array(items)) => items.iter().any(|a| a.as_str() == Some(expected)),
        _ => false,
    }
}

/// A role name Forge will hand to `set_config('role', ...)`: a plain identifier.
pub(crate) fn is_valid_role(role: &str) -> bool {
    let mut chars = role.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && role.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a-project-secret-of-at-least-thirty-two-bytes";

    fn reference() -> ProjectRef {
        ProjectRef::new("demo").expect("ref")
    }

    fn unmanaged() -> ProjectKeys {
        ProjectKeys::builder(reference(), SECRET.to_vec()).build().expect("keys")
    }

    fn managed(keys: impl IntoIterator<Item = ApiKey>) -> ProjectKeys {
        ProjectKeys::builder(reference(), SECRET.to_vec()).api_keys(keys).build().expect("managed keys")
    }

    fn now() -> i64 {
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs())
            .expect("now")
    }

    fn hs256(claims: Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET)).expect("sign")
    }

    fn opaque(kind: ApiKeyKind) -> String {
        generate_opaque_key(kind).expect("opaque kind").expose_secret().to_owned()
    }

    fn mint(kind: ApiKeyKind, id: &str) -> String {
        unmanaged().mint_api_jwt(kind, id).expect("mint")
    }

    fn key(kind: ApiKeyKind, value: &str) -> ApiKey {
        ApiKey::new(kind, value)
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    /// The role of the principal `apikey` and `Authorization` stand for, or the error code.
    fn who(keys: &ProjectKeys, apikey: Option<&str>, authorization: Option<&str>) -> Result<String, ErrorCode> {
        keys.authenticate(apikey.map(str::as_bytes), authorization.map(str::as_bytes))
            .map(|p| p.role().to_owned())
            .map_err(|e| e.code)
    }

    fn ok(role: &str) -> Result<String, ErrorCode> {
        Ok(role.to_owned())
    }

    fn session(iss: &str, role: &str) -> String {
        hs256(json!({
            "iss": iss, "sub": "6a1f1a35-6d8b-4a57-9d1b-2f6b7cd1c2a1", "role": role,
            "aud": "authenticated", "exp": now() + 3600,
        }))
    }

    #[test]
    fn kinds_have_stable_names_and_roles() {
        let names = ["publishable", "secret", "legacy_anon", "legacy_service_role"];
        let roles = ["anon", "service_role", "anon", "service_role"];
        for ((kind, name), role) in ApiKeyKind::ALL.into_iter().zip(names).zip(roles) {
            assert_eq!(kind.as_str(), name);
            assert_eq!(kind.to_string(), name);
            assert_eq!(name.parse::<ApiKeyKind>(), Ok(kind));
            assert_eq!(kind.role(), role);
        }
        for bad in ["anon", "service_role", "Publishable", ""] {
            assert!(bad.parse::<ApiKeyKind>().is_err(), "{bad}");
        }
    }

    #[test]
    fn generated_opaque_keys_are_random_and_prefixed() {
        for (kind, prefix) in [(ApiKeyKind::Publishable, PUBLISHABLE_PREFIX), (ApiKeyKind::Secret, SECRET_PREFIX)] {
            let a = opaque(kind);
            let body = a.strip_prefix(prefix).expect("prefix");
            assert_eq!(body.len(), 32);
            assert!(body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{body}");
            assert_ne!(a, opaque(kind));
        }
        assert!(generate_opaque_key(ApiKeyKind::Anon).is_none());
        assert!(generate_opaque_key(ApiKeyKind::ServiceRole).is_none());
    }

    #[test]
    fn minted_jwts_carry_the_key_claims_and_opaque_kinds_err() {
        let keys = unmanaged();
        for kind in [ApiKeyKind::Anon, ApiKeyKind::ServiceRole] {
            let token = keys.mint_api_jwt(kind, "key-1").expect("mint");
            let claims = keys.verify_jwt(&token).expect("verifies");
            assert_eq!(claims.get("iss"), Some(&json!("forge")));
            assert_eq!(claims.get("ref"), Some(&json!("demo")));
            assert_eq!(claims.role(), Some(kind.role()));
            assert_eq!(claims.get("jti"), Some(&json!("key-1")));
            let iat = claims.get("iat").and_then(Value::as_i64).expect("iat");
            assert!((iat - now()).abs() < 60);
            assert_eq!(claims.get("exp").and_then(Value::as_i64), Some(iat + MINTED_API_KEY_LIFETIME));
            assert_ne!(token, keys.mint_api_jwt(kind, "key-2").expect("mint"), "the jti tells keys apart");
        }
        for kind in [ApiKeyKind::Publishable, ApiKeyKind::Secret] {
            assert!(matches!(keys.mint_api_jwt(kind, "key-1"), Err(KeyError::NotJwtKind(k)) if k == kind));
        }
    }

    #[test]
    fn managed_set_accepts_its_keys_with_their_principal() {
        let (publishable, secret) = (opaque(ApiKeyKind::Publishable), opaque(ApiKeyKind::Secret));
        let (anon, service) = (mint(ApiKeyKind::Anon, "a"), mint(ApiKeyKind::ServiceRole, "s"));
        let keys = managed([
            key(ApiKeyKind::Publishable, &publishable),
            key(ApiKeyKind::Secret, &secret),
            key(ApiKeyKind::Anon, &anon),
            key(ApiKeyKind::ServiceRole, &service),
        ]);
        assert!(keys.is_managed());
        // In `apikey`.
        assert_eq!(who(&keys, Some(&publishable), None), ok("anon"));
        assert_eq!(who(&keys, Some(&secret), None), ok("service_role"));
        assert_eq!(who(&keys, Some(&anon), None), ok("anon"));
        assert_eq!(who(&keys, Some(&service), None), ok("service_role"));
        // As bearer JWTs, with or without an `apikey`.
        assert_eq!(who(&keys, Some(&publishable), Some(&bearer(&service))), ok("service_role"));
        assert_eq!(who(&keys, None, Some(&bearer(&service))), ok("service_role"));
        assert_eq!(who(&keys, Some(&secret), Some(&bearer(&anon))), ok("anon"));
        // As `Bearer sb_...`.
        assert_eq!(who(&keys, None, Some(&bearer(&secret))), ok("service_role"));
        assert_eq!(who(&keys, None, Some(&bearer(&publishable))), ok("anon"));
        // A JWT key's principal carries its claims; verify_jwt (Realtime's path) accepts it.
        let principal = keys.authenticate(Some(service.as_bytes()), None).expect("service");
        assert_eq!(principal.claims().get("jti"), Some(&json!("s")));
        assert!(keys.verify_jwt(&anon).is_ok());
    }

    #[test]
    fn derived_keys_absent_from_the_set_are_refused() {
        let derived = unmanaged();
        let publishable = opaque(ApiKeyKind::Publishable);
        let keys = managed([key(ApiKeyKind::Publishable, &publishable)]);
        let service = derived.service_key().expose_secret();
        let secret = derived.secret_key().expose_secret();
        for value in [derived.anon_key(), service, derived.publishable_key(), secret] {
            assert_eq!(who(&keys, Some(value), None), Err(ErrorCode::InvalidApiKey), "apikey");
            assert_eq!(who(&keys, None, Some(&bearer(value))), Err(ErrorCode::InvalidApiKey), "bearer");
        }
        for jwt in [derived.anon_key(), service] {
            assert_eq!(who(&keys, Some(&publishable), Some(&bearer(jwt))), Err(ErrorCode::InvalidApiKey));
            assert_eq!(keys.verify_jwt(jwt).map_err(|e| e.code).err(), Some(ErrorCode::InvalidApiKey));
        }
        // The accessors still return the derived values.
        assert_eq!(keys.anon_key(), derived.anon_key());
        assert_eq!(keys.secret_key().expose_secret(), secret);
    }

    #[test]
    fn a_revoked_jwt_key_is_refused_as_bearer_too() {
        let publishable = opaque(ApiKeyKind::Publishable);
        let (kept, revoked) = (mint(ApiKeyKind::ServiceRole, "kept"), mint(ApiKeyKind::ServiceRole, "revoked"));
        let keys = managed([key(ApiKeyKind::Publishable, &publishable), key(ApiKeyKind::ServiceRole, &kept)]);
        assert_eq!(who(&keys, Some(&publishable), Some(&bearer(&kept))), ok("service_role"));
        assert_eq!(who(&keys, Some(&publishable), Some(&bearer(&revoked))), Err(ErrorCode::InvalidApiKey));
        assert_eq!(who(&keys, None, Some(&bearer(&revoked))), Err(ErrorCode::InvalidApiKey));
        assert_eq!(who(&keys, Some(&revoked), None), Err(ErrorCode::InvalidApiKey));
        assert!(keys.verify_jwt(&revoked).is_err());
        assert!(keys.verify_own_jwt(&revoked).is_err());
        // Refused again once verified (the cache of verified tokens holds only accepted ones).
        assert_eq!(who(&keys, None, Some(&bearer(&revoked))), Err(ErrorCode::InvalidApiKey));
        // A legacy key imported from Supabase (iss `supabase`) is revocable the same way.
        let imported =
            hs256(json!({ "iss": "supabase", "ref": "demo", "role": "anon", "iat": 0, "exp": now() + 3600 }));
        assert_eq!(who(&keys, None, Some(&bearer(&imported))), Err(ErrorCode::InvalidApiKey));
        let keys = managed([key(ApiKeyKind::Anon, &imported)]);
        assert_eq!(who(&keys, None, Some(&bearer(&imported))), ok("anon"));
        assert_eq!(who(&keys, Some(&imported), None), ok("anon"));
    }

    #[test]
    fn user_sessions_still_work_with_a_managed_set() {
        let publishable = opaque(ApiKeyKind::Publishable);
        let keys = managed([key(ApiKeyKind::Publishable, &publishable)]);
        let user = session("http://localhost:54321/auth/v1", "authenticated");
        assert_eq!(who(&keys, Some(&publishable), Some(&bearer(&user))), ok("authenticated"));
        assert_eq!(who(&keys, None, Some(&bearer(&user))), ok("authenticated"));
        assert!(keys.verify_jwt(&user).is_ok());
        // Tokens of other issuers with an API role are sessions too, as before.
        let anon_session = session("http://localhost:54321/auth/v1", "anon");
        assert_eq!(who(&keys, Some(&publishable), Some(&bearer(&anon_session))), ok("anon"));
        // But a user session is not an API key.
        assert_eq!(who(&keys, Some(&user), None), Err(ErrorCode::InvalidApiKey));
    }

    #[test]
    fn two_keys_of_one_kind_both_work() {
        let (p1, p2) = (opaque(ApiKeyKind::Publishable), opaque(ApiKeyKind::Publishable));
        let (a1, a2) = (mint(ApiKeyKind::Anon, "a1"), mint(ApiKeyKind::Anon, "a2"));
        let keys = managed([&p1, &p2].map(|v| key(ApiKeyKind::Publishable, v)));
        assert_eq!(who(&keys, Some(&p1), None), ok("anon"));
        assert_eq!(who(&keys, Some(&p2), None), ok("anon"));
        let keys = ProjectKeys::builder(reference(), SECRET.to_vec())
            .api_keys([key(ApiKeyKind::Anon, &a1)])
            .api_keys([key(ApiKeyKind::Anon, &a2)])
            .build()
            .expect("keys");
        for a in [&a1, &a2] {
            assert_eq!(who(&keys, Some(a), None), ok("anon"));
            assert_eq!(who(&keys, None, Some(&bearer(a))), ok("anon"));
        }
    }

    #[test]
    fn a_large_set_finds_every_key() {
        let mut values = Vec::new();
        for i in 0..50 {
            let kind = ApiKeyKind::ALL[i % 4];
            let value = generate_opaque_key(kind)
                .map(|s| s.expose_secret().to_owned())
                .unwrap_or_else(|| mint(kind, &format!("key-{i}")));
            values.push((kind, value));
        }
        let keys = managed(values.iter().map(|(kind, v)| key(*kind, v)));
        assert_eq!(keys.0.managed.as_ref().map(HashMap::len), Some(50));
        for (kind, value) in &values {
            assert_eq!(who(&keys, Some(value), None), ok(kind.role()), "{kind}");
        }
        assert_eq!(who(&keys, Some(&opaque(ApiKeyKind::Secret)), None), Err(ErrorCode::InvalidApiKey));
    }

    #[test]
    fn an_empty_set_refuses_every_api_key() {
        let derived = unmanaged();
        let keys = managed([]);
        assert!(keys.is_managed());
        assert_eq!(who(&keys, Some(derived.anon_key()), None), Err(ErrorCode::InvalidApiKey));
        assert_eq!(who(&keys, Some(derived.publishable_key()), None), Err(ErrorCode::InvalidApiKey));
        let user = session("http://localhost:54321/auth/v1", "authenticated");
        assert_eq!(who(&keys, None, Some(&bearer(&user))), ok("authenticated"));
    }

    #[test]
    fn the_derived_keys_as_a_managed_set_keep_the_defaults() {
        let derived = unmanaged();
        let keys = managed(derived.derived_api_keys());
        let kinds: Vec<ApiKeyKind> = derived.derived_api_keys().iter().map(|k| k.kind).collect();
        assert_eq!(kinds, ApiKeyKind::ALL);
        for k in derived.derived_api_keys() {
            let value = k.value.expose_secret();
            assert_eq!(who(&keys, Some(value), None), ok(k.kind.role()));
            assert_eq!(who(&derived, Some(value), None), ok(k.kind.role()));
        }
        assert_eq!(who(&keys, None, Some(&bearer(derived.service_key().expose_secret()))), ok("service_role"));
        // A minted key of the same secret is not in the set.
        assert_eq!(who(&keys, Some(&mint(ApiKeyKind::Anon, "x")), None), Err(ErrorCode::InvalidApiKey));
    }

    #[test]
    fn unmanaged_keys_behave_as_before() {
        let keys = unmanaged();
        assert!(!keys.is_managed());
        assert_eq!(who(&keys, Some(keys.anon_key()), None), ok("anon"));
        assert_eq!(who(&keys, Some(keys.secret_key().expose_secret()), None), ok("service_role"));
        assert_eq!(who(&keys, None, Some(&bearer(keys.service_key().expose_secret()))), ok("service_role"));
        // Any verified API-role JWT of the project's secret is an API key, minted ones too.
        let minted = mint(ApiKeyKind::ServiceRole, "m");
        assert_eq!(who(&keys, Some(&minted), None), ok("service_role"));
        assert_eq!(who(&keys, Some(keys.anon_key()), Some(&bearer(&minted))), ok("service_role"));
        assert_eq!(who(&keys, Some(&opaque(ApiKeyKind::Secret)), None), Err(ErrorCode::InvalidApiKey));
    }

    #[test]
    fn an_expired_jwt_key_is_refused() {
        let expired = hs256(json!({ "iss": "forge", "ref": "demo", "role": "anon", "iat": 0, "exp": now() - 3600 }));
        let keys = managed([key(ApiKeyKind::Anon, &expired)]);
        assert_eq!(who(&keys, Some(&expired), None), Err(ErrorCode::InvalidApiKey));
        assert_eq!(who(&keys, None, Some(&bearer(&expired))), Err(ErrorCode::JwtExpired));
    }

    #[test]
    fn build_refuses_keys_that_do_not_fit_their_kind_or_project() {
        let other_secret = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &json!({ "iss": "forge", "ref": "demo", "role": "anon", "exp": now() + 60 }),
            &EncodingKey::from_secret(b"another-secret-of-at-least-thirty-two-bytes"),
        )
        .expect("sign");
        let other_ref = hs256(json!({ "iss": "forge", "ref": "other", "role": "anon", "exp": now() + 60 }));
        let session = session("http://localhost:54321/auth/v1", "anon");
        let cases = [
            key(ApiKeyKind::Publishable, &opaque(ApiKeyKind::Secret)),
            key(ApiKeyKind::Secret, PUBLISHABLE_PREFIX),
            key(ApiKeyKind::Secret, SECRET_PREFIX),
            key(ApiKeyKind::Anon, &mint(ApiKeyKind::ServiceRole, "s")),
            key(ApiKeyKind::Anon, &opaque(ApiKeyKind::Publishable)),
            key(ApiKeyKind::Anon, &other_secret),
            key(ApiKeyKind::Anon, &other_ref),
            key(ApiKeyKind::Anon, &session),
        ];
        for case in cases {
            let value = case.value.expose_secret().to_owned();
            let err = ProjectKeys::builder(reference(), SECRET.to_vec()).api_keys([case]).build().expect_err(&value);
            assert!(matches!(err, KeyError::InvalidApiKey { .. }), "{err}");
            let message = err.to_string();
            assert!(value.len() <= SECRET_PREFIX.len() || !message.contains(&value), "{message}");
        }
    }

    #[test]
    fn debug_never_prints_a_secret() {
        let derived = unmanaged();
        let secret = opaque(ApiKeyKind::Secret);
        let service = mint(ApiKeyKind::ServiceRole, "s");
        let set = [key(ApiKeyKind::Secret, &secret), key(ApiKeyKind::ServiceRole, &service)];
        let builder = ProjectKeys::builder(reference(), SECRET.to_vec()).api_keys(set.clone());
        let keys = managed(set.clone());
        let secrets = [
            secret.as_str(),
            service.as_str(),
            derived.secret_key().expose_secret(),
            derived.service_key().expose_secret(),
            std::str::from_utf8(SECRET).expect("utf8"),
        ];
        let printed = [
            format!("{set:?}"),
            format!("{builder:?}"),
            format!("{keys:?}"),
            format!("{:?}", derived.derived_api_keys()),
            format!("{derived:?}"),
        ];
        for text in &printed {
            for s in secrets {
                assert!(!text.contains(s), "{text}");
            }
        }
        assert_eq!(format!("{:?}", set[0]), "ApiKey { kind: Secret, .. }");
        assert!(format!("{keys:?}").contains("managed_keys: Some(2)"));
    }
}
