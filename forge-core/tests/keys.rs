//! JWT and API-key verification, as a table of cases.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use forge_core::keys::{
    KeyAlgorithm, ProjectKeys, SigningKey, VerifyConfig, generate_es256_pkcs8, generate_signing_key_pkcs8, pkcs8_pem,
};
use forge_core::{ErrorCode, Principal, ProjectRef};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

const SECRET: &[u8] = b"a-project-secret-of-at-least-thirty-two-bytes";
const USER: &str = "6a1f1a35-6d8b-4a57-9d1b-2f6b7cd1c2a1";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64
}

fn keys() -> ProjectKeys {
    ProjectKeys::builder(ProjectRef::new("demo").expect("ref"), SECRET.to_vec()).build().expect("keys")
}

fn hs256(secret: &[u8], claims: Value) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret)).expect("sign")
}

fn user_claims() -> Value {
    json!({ "sub": USER, "role": "authenticated", "aud": "authenticated", "exp": now() + 3600, "email": "u@example.com" })
}

/// A token with an arbitrary header, signed with HMAC-SHA256 over `key` whatever `alg` says.
fn forged(header: Value, claims: Value, key: &[u8]) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{h}.{c}");
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

enum Want {
    Anon,
    User,
    Service,
    Err(ErrorCode),
}

#[test]
fn verification_table() {
    let k = keys();
    let anon = k.anon_key().to_owned();
    let service = k.service_key().expose_secret().to_owned();
    let publishable = k.publishable_key().to_owned();
    let secret_key = k.secret_key().expose_secret().to_owned();
    let user = hs256(SECRET, user_claims());
    let mut expired = user_claims();
    expired["exp"] = json!(now() - 120);
    let mut within_leeway = user_claims();
    within_leeway["exp"] = json!(now() - 10);
    let mut not_yet = user_claims();
    not_yet["nbf"] = json!(now() + 120);
    let mut wrong_aud = user_claims();
    wrong_aud["aud"] = json!("someone-else");
    let mut aud_list = user_claims();
    aud_list["aud"] = json!(["x", "authenticated"]);
    let mut no_aud = user_claims();
    no_aud.as_object_mut().expect("object").remove("aud");
    let mut no_exp = user_claims();
    no_exp.as_object_mut().expect("object").remove("exp");
    let mut bad_role = user_claims();
    bad_role["role"] = json!("x'; drop table users; --");
    let mut superuser = user_claims();
    superuser["role"] = json!("postgres");
    let mut read_all = user_claims();
    read_all["role"] = json!("pg_read_all_data");
    let superuser_key = hs256(SECRET, json!({ "role": "postgres", "exp": now() + 60 }));
    let none_alg = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(user_claims().to_string())
    );
    // HS/RS confusion: an RS256 header over an HMAC made with the project secret.
    let rs_confusion = forged(json!({"alg": "RS256", "typ": "JWT"}), user_claims(), SECRET);
    let other_key_for_apikey =
        hs256(b"another-secret-that-is-also-32-bytes-long!!", json!({"role": "anon", "exp": now() + 60}));
    let big = format!("Bearer {}", "a".repeat(9000));

    let cases: Vec<(&str, Option<&str>, Option<String>, Want)> = vec![
        ("user token with anon apikey", Some(&anon), Some(bearer(&user)), Want::User),
        ("anon JWT key alone", Some(&anon), None, Want::Anon),
        ("anon JWT key as bearer too", Some(&anon), Some(bearer(&anon)), Want::Anon),
        ("service JWT key", Some(&service), Some(bearer(&service)), Want::Service),
        ("publishable key", Some(&publishable), None, Want::Anon),
        ("secret key", Some(&secret_key), None, Want::Service),
        (
            "Bearer sb_publishable as anon (what supabase-js sends)",
            Some(&publishable),
            Some(bearer(&publishable)),
            Want::Anon,
        ),
        ("Bearer sb_publishable without apikey", None, Some(bearer(&publishable)), Want::Anon),
        ("Bearer sb_secret without apikey", None, Some(bearer(&secret_key)), Want::Service),
        ("apikey decides over Bearer sb_", Some(&secret_key), Some(bearer(&publishable)), Want::Service),
        ("user token with publishable apikey", Some(&publishable), Some(bearer(&user)), Want::User),
        ("expired", Some(&anon), Some(bearer(&hs256(SECRET, expired))), Want::Err(ErrorCode::JwtExpired)),
        ("expired within leeway", Some(&anon), Some(bearer(&hs256(SECRET, within_leeway))), Want::User),
        ("not yet valid", Some(&anon), Some(bearer(&hs256(SECRET, not_yet))), Want::Err(ErrorCode::JwtNotYetValid)),
        (
            "wrong signature",
            Some(&anon),
            Some(bearer(&hs256(b"not-the-project-secret-but-32-bytes-long", user_claims()))),
            Want::Err(ErrorCode::JwtBadSignature),
        ),
        ("alg none", Some(&anon), Some(bearer(&none_alg)), Want::Err(ErrorCode::JwtAlgorithmNotAllowed)),
        ("HS/RS confusion", Some(&anon), Some(bearer(&rs_confusion)), Want::Err(ErrorCode::JwtAlgorithmNotAllowed)),
        ("wrong aud", Some(&anon), Some(bearer(&hs256(SECRET, wrong_aud))), Want::Err(ErrorCode::JwtBadAudience)),
        ("aud as a list", Some(&anon), Some(bearer(&hs256(SECRET, aud_list))), Want::User),
        (
            "user token without aud",
            Some(&anon),
            Some(bearer(&hs256(SECRET, no_aud))),
            Want::Err(ErrorCode::JwtBadAudience),
        ),
        ("no exp", Some(&anon), Some(bearer(&hs256(SECRET, no_exp))), Want::Err(ErrorCode::JwtBadClaims)),
        (
            "role that is not an identifier",
            Some(&anon),
            Some(bearer(&hs256(SECRET, bad_role))),
            Want::Err(ErrorCode::JwtBadClaims),
        ),
        (
            "role postgres signed with the project secret",
            Some(&anon),
            Some(bearer(&hs256(SECRET, superuser))),
            Want::Err(ErrorCode::JwtRoleNotAllowed),
        ),
        (
            "role pg_read_all_data signed with the project secret",
            Some(&anon),
            Some(bearer(&hs256(SECRET, read_all))),
            Want::Err(ErrorCode::JwtRoleNotAllowed),
        ),
        ("an API key naming role postgres", Some(&superuser_key), None, Want::Err(ErrorCode::InvalidApiKey)),
        ("not a JWT", Some(&anon), Some(bearer("not-a-jwt")), Want::Err(ErrorCode::InvalidJwt)),
        ("three garbage parts", Some(&anon), Some(bearer("a.b.c")), Want::Err(ErrorCode::InvalidJwt)),
        ("empty bearer", Some(&anon), Some("Bearer ".into()), Want::Err(ErrorCode::MalformedAuthorization)),
        ("Basic scheme", Some(&anon), Some("Basic dXNlcjpwYXNz".into()), Want::Err(ErrorCode::MalformedAuthorization)),
        ("no scheme", Some(&anon), Some(user.clone()), Want::Err(ErrorCode::MalformedAuthorization)),
        ("oversized header", Some(&anon), Some(big), Want::Err(ErrorCode::HeaderTooLarge)),
        ("no key at all", None, None, Want::Err(ErrorCode::NoApiKey)),
        ("unknown opaque key", Some("sb_publishable_nope"), None, Want::Err(ErrorCode::InvalidApiKey)),
        ("apikey signed by another secret", Some(&other_key_for_apikey), None, Want::Err(ErrorCode::InvalidApiKey)),
        ("user token in the apikey header", Some(&user), None, Want::Err(ErrorCode::InvalidApiKey)),
        (
            "bad apikey with a valid bearer",
            Some("sb_secret_wrong"),
            Some(bearer(&user)),
            Want::Err(ErrorCode::InvalidApiKey),
        ),
    ];

    for (name, apikey, authorization, want) in cases {
        let got = k.authenticate(apikey.map(str::as_bytes), authorization.as_deref().map(str::as_bytes));
        match (want, got) {
            (Want::Anon, Ok(Principal::Anon(_))) | (Want::Service, Ok(Principal::Service(_))) => {}
            (Want::User, Ok(p @ Principal::User(_))) => {
                assert_eq!(p.role(), "authenticated", "{name}");
                assert_eq!(p.user_id().map(|u| u.to_string()).as_deref(), Some(USER), "{name}");
            }
            (Want::Err(code), Err(e)) => assert_eq!(e.code, code, "{name}: {}", e.message),
            (_, got) => panic!("{name}: unexpected {got:?}"),
        }
    }
}

#[test]
fn only_the_api_roles_and_configured_ones_may_be_switched_to() {
    let default = keys();
    for role in ["anon", "authenticated", "service_role"] {
        let mut claims = user_claims();
        claims["role"] = json!(role);
        let principal = default.authenticate(None, Some(bearer(&hs256(SECRET, claims)).as_bytes())).expect(role);
        assert_eq!(principal.role(), role);
    }
    let mut editor = user_claims();
    editor["role"] = json!("editor");
    let editor = hs256(SECRET, editor);
    let err = default.verify_jwt(&editor).expect_err("not configured");
    assert_eq!(
        (err.code, err.message.as_ref()),
        (ErrorCode::JwtRoleNotAllowed, "permission denied to set role \"editor\"")
    );
    assert_eq!(ErrorCode::JwtRoleNotAllowed.info().status, 403);
    assert_eq!(
        ErrorCode::JwtRoleNotAllowed.info().postgrest,
        "42501",
        "what PostgREST answers when SET ROLE is refused"
    );

    let configured = ProjectKeys::builder(ProjectRef::new("demo").expect("ref"), SECRET.to_vec())
        .verify(VerifyConfig::default().with_extra_roles(["editor"]))
        .build()
        .expect("keys");
    let principal = configured.authenticate(None, Some(bearer(&editor).as_bytes())).expect("configured role");
    assert_eq!(principal.role(), "editor");
    let mut superuser = user_claims();
    superuser["role"] = json!("postgres");
    let err = configured.verify_jwt(&hs256(SECRET, superuser)).expect_err("still refused");
    assert_eq!(err.code, ErrorCode::JwtRoleNotAllowed);
}

#[test]
fn leeway_is_clamped_to_sixty_seconds() {
    let k = ProjectKeys::builder(ProjectRef::new("demo").expect("ref"), SECRET.to_vec())
        .verify(VerifyConfig::default().with_leeway(Duration::from_secs(600)))
        .build()
        .expect("keys");
    assert_eq!(k.verify_config().leeway, Duration::from_secs(60));
    let mut claims = user_claims();
    claims["exp"] = json!(now() - 90);
    let err = k.verify_jwt(&hs256(SECRET, claims)).expect_err("expired beyond 60 s");
    assert_eq!(err.code, ErrorCode::JwtExpired);
}

#[test]
fn short_secrets_are_refused() {
    let err = ProjectKeys::builder(ProjectRef::new("demo").expect("ref"), b"short".to_vec()).build();
    assert!(err.is_err());
}

#[test]
fn keys_are_deterministic_per_secret_and_ref() {
    let a = keys();
    let b = keys();
    assert_eq!(a.anon_key(), b.anon_key());
    assert_eq!(a.publishable_key(), b.publishable_key());
    let other = ProjectKeys::builder(ProjectRef::new("other").expect("ref"), SECRET.to_vec()).build().expect("keys");
    assert_ne!(a.publishable_key(), other.publishable_key());
    assert!(a.publishable_key().starts_with("sb_publishable_"));
    assert!(a.secret_key().expose_secret().starts_with("sb_secret_"));
    // The anon key carries the role Supabase clients expect.
    let claims = a.verify_jwt(a.anon_key()).expect("anon key verifies");
    assert_eq!(claims.role(), Some("anon"));
    assert_eq!(claims.get("ref"), Some(&json!("demo")));
}

#[test]
fn es256_tokens_verify_and_the_public_key_is_published() {
    let der = generate_es256_pkcs8().expect("generate");
    let k = ProjectKeys::builder(ProjectRef::new("demo").expect("ref"), SECRET.to_vec())
        .es256_pkcs8(der)
        .build()
        .expect("keys");
    let claims = user_claims().as_object().expect("object").clone();
    let token = k.sign(&claims).expect("sign");
    let header = jsonwebtoken::decode_header(&token).expect("header");
    assert_eq!(header.alg, Algorithm::ES256);
    let jwks = k.jwks();
    let jwk = &jwks["keys"][0];
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert_eq!(header.kid.as_deref(), jwk["kid"].as_str());
    assert!(jwk.get("d").is_none(), "the private part must never be published");
    let p = k.authenticate(Some(k.anon_key().as_bytes()), Some(bearer(&token).as_bytes())).expect("valid ES256 token");
    assert!(matches!(p, Principal::User(_)));

    // HS256 forged with the public key material as the HMAC secret must not pass.
    let public_material = jwks.to_string();
    let forged = hs256(public_material.as_bytes(), user_claims());
    let err = k.verify_jwt(&forged).expect_err("forged with public key");
    assert_eq!(err.code, ErrorCode::JwtBadSignature);

    // Without an ES256 key configured, ES256 tokens are refused outright.
    let err = keys().verify_jwt(&token).expect_err("ES256 not configured");
    assert_eq!(err.code, ErrorCode::JwtAlgorithmNotAllowed);
}

mod third_party {
    use forge_core::keys::generate_es256_pkcs8;
    use forge_core::{ErrorCode, Principal, ProjectKeys, ProjectRef, ThirdPartyIssuer};
    use serde_json::{Map, Value, json};

    fn idp() -> ProjectKeys {
        ProjectKeys::builder(ProjectRef::new("idp").expect("ref"), vec![1u8; 32])
            .es256_pkcs8(generate_es256_pkcs8().expect("key"))
            .build()
            .expect("idp keys")
    }

    fn claims(v: Value) -> Map<String, Value> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs();
        let mut m = v.as_object().expect("object").clone();
        m.entry("exp").or_insert(json!(now + 300));
        m
    }

    #[test]
    fn tokens_of_a_trusted_issuer_are_authenticated_users_and_nothing_more() {
        let external = idp();
        let issuer = ThirdPartyIssuer::new("https://idp.example.com", Some("my-app".into()));
        assert_eq!(issuer.set_jwks(&external.jwks()).expect("jwks"), 1);
        let own = idp();
        let keys = ProjectKeys::builder(ProjectRef::new("proj").expect("ref"), vec![2u8; 32])
            .third_party(issuer.clone())
            .build()
            .expect("keys");
        let anon = keys.anon_key().to_owned();
        let auth = |token: &str| keys.authenticate(Some(anon.as_bytes()), Some(format!("Bearer {token}").as_bytes()));

        let good = external
            .sign(&claims(json!({ "iss": "https://idp.example.com", "aud": "my-app", "sub": "user_2abc" })))
            .expect("sign");
        match auth(&good).expect("accepted") {
            Principal::User(c) => {
                assert_eq!(c.role(), Some("authenticated"), "no role claim means authenticated");
                assert_eq!(c.sub(), Some("user_2abc"));
            }
            other => panic!("expected a user, got {other:?}"),
        }

        let cases = [
            (json!({ "iss": "https://evil.example.com", "aud": "my-app", "sub": "x" }), ErrorCode::JwtBadClaims),
            (json!({ "iss": "https://idp.example.com", "aud": "other-app", "sub": "x" }), ErrorCode::JwtBadAudience),
            (
                json!({ "iss": "https://idp.example.com", "aud": "my-app", "role": "service_role" }),
                ErrorCode::JwtBadClaims,
            ),
            (json!({ "iss": "https://idp.example.com", "aud": "my-app", "exp": 1_000 }), ErrorCode::JwtExpired),
        ];
        for (c, code) in cases {
            let token = external.sign(&claims(c.clone())).expect("sign");
            assert_eq!(auth(&token).expect_err("refused").code, code, "{c}");
        }
        // A key the issuer never published.
        let forged = own.sign(&claims(json!({ "iss": "https://idp.example.com", "aud": "my-app" }))).expect("sign");
        assert_eq!(auth(&forged).expect_err("unknown key").code, ErrorCode::JwtBadSignature);
        // Rotated away: once the JWKS no longer lists the key, its tokens stop working.
        issuer.set_jwks(&json!({ "keys": [] })).expect("empty");
        assert!(auth(&good).is_err());
        // HS256 tokens still need the project's own secret.
        let hs =
            external.sign_hs256(&claims(json!({ "iss": "https://idp.example.com", "aud": "my-app" }))).expect("sign");
        assert_eq!(auth(&hs).expect_err("foreign secret").code, ErrorCode::JwtBadSignature);
    }
}

#[test]
fn a_verified_token_stops_working_when_it_expires() {
    let keys = ProjectKeys::builder(ProjectRef::new("demo").expect("ref"), SECRET.to_vec())
        .verify(VerifyConfig::default().with_leeway(Duration::ZERO))
        .build()
        .expect("keys");
    let mut claims = user_claims();
    claims["exp"] = json!(now() + 1);
    let token = hs256(SECRET, claims);
    assert!(keys.verify_jwt(&token).is_ok(), "valid now (and remembered)");
    assert!(keys.verify_jwt(&token).is_ok(), "again, from the cache");
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(keys.verify_jwt(&token).expect_err("expired").code, ErrorCode::JwtExpired);
}

fn signing_key(alg: KeyAlgorithm) -> SigningKey {
    let der = generate_signing_key_pkcs8(alg).expect("generate");
    let key = SigningKey::from_pkcs8_pem(&pkcs8_pem(&der)).expect("parse PEM");
    assert_eq!(key.kid(), SigningKey::from_pkcs8_der(&der).expect("parse DER").kid(), "PEM and DER are the same key");
    key
}

fn header_of(token: &str) -> Value {
    let h = token.split('.').next().expect("header");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).expect("base64url")).expect("json")
}

#[test]
fn current_standby_and_previous_keys_are_published_and_only_the_current_one_signs() {
    let current = signing_key(KeyAlgorithm::Es256);
    let standby = signing_key(KeyAlgorithm::Es256);
    let previous = signing_key(KeyAlgorithm::Rs256);
    let builder = |signing: &SigningKey, others: &[&SigningKey]| {
        let mut b =
            ProjectKeys::builder(ProjectRef::new("demo").expect("ref"), SECRET.to_vec()).signing_key(signing.clone());
        for k in others {
            b = b.verification_key((*k).clone());
        }
        b.build().expect("keys")
    };
    let k = builder(&current, &[&standby, &previous]);
    let jwks = k.jwks();
    let kids: Vec<&str> = jwks["keys"].as_array().expect("keys").iter().filter_map(|j| j["kid"].as_str()).collect();
    assert_eq!(kids, [current.kid(), standby.kid(), previous.kid()], "current first, then standby and previous");
    for jwk in jwks["keys"].as_array().expect("keys") {
        assert_eq!((jwk["use"].as_str(), &jwk["key_ops"]), (Some("sig"), &json!(["verify"])));
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(jwk.get(private).is_none(), "no private member {private} in {jwk}");
        }
    }
    assert_eq!(jwks["keys"][2]["kty"], "RSA");

    let claims = user_claims().as_object().expect("object").clone();
    let token = k.sign(&claims).expect("sign");
    assert_eq!(header_of(&token), json!({ "alg": "ES256", "typ": "JWT", "kid": current.kid() }));
    assert!(matches!(k.authenticate(None, Some(bearer(&token).as_bytes())), Ok(Principal::User(_))));
    // The legacy HS256 secret still signs valid user tokens.
    assert!(k.verify_jwt(&hs256(SECRET, user_claims())).is_ok());

    // Rotation: the standby becomes current and the current one previous. Tokens signed
    // before the rotation still verify; after it, the new current key signs.
    let rotated = builder(&standby, &[&current]);
    assert!(rotated.verify_jwt(&token).is_ok(), "a token of the previous key still verifies");
    let after = rotated.sign(&claims).expect("sign");
    assert_eq!(header_of(&after)["kid"], standby.kid());
    assert!(k.verify_jwt(&after).is_ok(), "servers not yet rotated already know the standby key");
    // A key dropped from the set no longer verifies.
    let dropped = builder(&standby, &[]);
    assert_eq!(dropped.verify_jwt(&token).expect_err("dropped key").code, ErrorCode::JwtAlgorithmNotAllowed);

    // RS256 signs too, when it is the current key.
    let rsa = builder(&previous, &[]);
    let rs_token = rsa.sign(&claims).expect("sign RS256");
    assert_eq!(header_of(&rs_token)["alg"], "RS256");
    assert!(rsa.verify_jwt(&rs_token).is_ok());
    assert!(k.verify_jwt(&rs_token).is_ok(), "a published RSA key verifies");
}

#[test]
fn asymmetric_tokens_are_checked_for_algorithm_expiry_audience_and_role() {
    let es = signing_key(KeyAlgorithm::Es256);
    let rs = signing_key(KeyAlgorithm::Rs256);
    let k = ProjectKeys::builder(ProjectRef::new("demo").expect("ref"), SECRET.to_vec())
        .signing_key(es.clone())
        .verification_key(rs.clone())
        .build()
        .expect("keys");
    let sign = |claims: Value| k.sign(claims.as_object().expect("object")).expect("sign");

    let mut expired = user_claims();
    expired["exp"] = json!(now() - 120);
    assert_eq!(k.verify_jwt(&sign(expired)).expect_err("expired").code, ErrorCode::JwtExpired);
    let mut no_exp = user_claims();
    no_exp.as_object_mut().expect("object").remove("exp");
    assert_eq!(k.verify_jwt(&sign(no_exp)).expect_err("no exp").code, ErrorCode::JwtBadClaims);
    let mut wrong_aud = user_claims();
    wrong_aud["aud"] = json!("someone-else");
    assert_eq!(k.verify_jwt(&sign(wrong_aud)).expect_err("aud").code, ErrorCode::JwtBadAudience);
    let mut superuser = user_claims();
    superuser["role"] = json!("postgres");
    assert_eq!(k.verify_jwt(&sign(superuser)).expect_err("role").code, ErrorCode::JwtRoleNotAllowed);

    // Alg confusion. HS256 over the public key (as PEM-less JWK text, or the x coordinate)
    // with the key's kid: checked against the secret only, so the signature fails.
    let token = sign(user_claims());
    let (payload, _) = token.split_once('.').map(|(_, rest)| rest.split_once('.').expect("3 parts")).expect("parts");
    let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json");
    for secret in [es.public_jwk().to_string(), es.public_jwk()["x"].as_str().expect("x").to_owned()] {
        let forged_hs =
            forged(json!({ "alg": "HS256", "typ": "JWT", "kid": es.kid() }), payload.clone(), secret.as_bytes());
        assert_eq!(k.verify_jwt(&forged_hs).expect_err("HS256 with a public key").code, ErrorCode::JwtBadSignature);
    }
    // The ES256 signature under an RS256 header naming the EC key, and the reverse: refused.
    let (_, rest) = token.split_once('.').expect("parts");
    let swap = |header: Value| format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()));
    let rs_header_ec_kid = swap(json!({ "alg": "RS256", "typ": "JWT", "kid": es.kid() }));
    assert!(k.verify_jwt(&rs_header_ec_kid).is_err());
    let es_header_rsa_kid = swap(json!({ "alg": "ES256", "typ": "JWT", "kid": rs.kid() }));
    assert!(k.verify_jwt(&es_header_rsa_kid).is_err());
    // An unknown kid is refused.
    let unknown = swap(json!({ "alg": "ES256", "typ": "JWT", "kid": "not-a-key" }));
    assert!(k.verify_jwt(&unknown).is_err());
    // A PEM that is not PKCS#8 is refused with a hint.
    let err = SigningKey::from_pkcs8_pem("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")
        .expect_err("SEC1 PEM");
    assert!(err.to_string().contains("openssl pkcs8"), "{err}");
}
