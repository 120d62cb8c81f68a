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
}

impl ProjectKeysBuilder {
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
        })))
    }
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
        }
    }

    /// The anon API key (a JWT; safe to ship in browsers).
    pub fn anon_key(&self) -> &str {
        &self.0.anon_key
    }

    /// The service-role API key (a JWT that bypasses RLS; keep it secret).
    pub fn service_key(&self) -> &SecretString {
        &self.0.service_key
    }

    /// The opaque publishable key (`sb_publishable_...`), equivalent to the anon key.
    pub fn publishable_key(&self) -> &str {
        &self.0.publishable_key
    }

    /// The opaque secret key (`sb_secret_...`), equivalent to the service key.
    pub fn secret_key(&self) -> &SecretString {
        &self.0.secret_key
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
    /// is not an API-key role (`anon`, `service_role`) must name the audience.
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
        if let Some(p) = self.own_key(token) {
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
