//! In-process measurements without HTTP: raw password verification on plain threads, and the
//! per-request authentication work (JWT verification, claims JSON) on one thread, broken down
//! into its parts.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::{hmac, signature};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use forge_core::{Principal, ProjectKeys};
use serde_json::{Map, Value};

/// Password verifications done on `threads` threads at once in about `duration`, and the
/// time they took.
pub(crate) fn password_verifications(
    password: &str,
    stored: &str,
    threads: usize,
    duration: Duration,
) -> (u64, Duration) {
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let ok = matches!(
                        forge_auth::password::verify(password, stored),
                        Ok(forge_auth::password::Verified::Valid { .. })
                    );
                    assert!(ok, "the benchmark password must verify");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
    });
    // Verifications still running at the stop are counted, so the time runs until they end.
    (done.load(Ordering::Relaxed), started.elapsed())
}

/// Keeps the optimizer from discarding a result.
fn sink<T>(value: T) {
    black_box(value);
}

/// One timed step of the per-request authentication work.
#[derive(Debug)]
pub(crate) struct Step {
    pub(crate) name: &'static str,
    pub(crate) ns: f64,
}

type Timed<'a> = (&'static str, Box<dyn FnMut() + 'a>);

/// Nanoseconds per call of each function, on this thread. The functions take turns, five
/// slices of `each / 5` apiece, and each keeps its fastest slice, so that other work on the
/// machine inflates the figures as little, and as evenly, as possible.
fn interleaved(each: Duration, fs: &mut [Timed<'_>]) -> Vec<Step> {
    const SLICES: u32 = 5;
    let slice = each / SLICES;
    for (_, f) in fs.iter_mut() {
        let warm = Instant::now();
        while warm.elapsed() < slice / 4 {
            f();
        }
    }
    let mut best = vec![f64::INFINITY; fs.len()];
    for _ in 0..SLICES {
        for (i, (_, f)) in fs.iter_mut().enumerate() {
            let started = Instant::now();
            let mut calls = 0u64;
            while started.elapsed() < slice {
                for _ in 0..16 {
                    f();
                }
                calls += 16;
            }
            best[i] = best[i].min(started.elapsed().as_nanos() as f64 / calls as f64);
        }
    }
    fs.iter().zip(best).map(|((name, _), ns)| Step { name, ns }).collect()
}

/// The tokens the steps work on.
#[derive(Debug)]
pub(crate) struct Tokens<'a> {
    pub(crate) hs256: &'a str,
    pub(crate) es256: &'a str,
    /// The HS256 secret, to time HMAC on its own.
    pub(crate) secret: &'a [u8],
}

/// Times forge-core's authentication steps, and the pieces of a verification on their own.
pub(crate) fn auth_steps(keys: &ProjectKeys, tokens: &Tokens<'_>, each: Duration) -> Result<Vec<Step>, String> {
    let anon_key = keys.anon_key().as_bytes();
    let bearer = |token: &str| format!("Bearer {token}");
    let (anon_bearer, hs_bearer, es_bearer) = (bearer(keys.anon_key()), bearer(tokens.hs256), bearer(tokens.es256));
    let authenticate = |authorization: &str| keys.authenticate(Some(anon_key), Some(authorization.as_bytes()));
    let anon = authenticate(&anon_bearer).map_err(|e| e.to_string())?;
    let user = authenticate(&es_bearer).map_err(|e| e.to_string())?;
    let claims = user.claims().clone();

    // The pieces of a verification, with the same keys and tokens.
    let parts = |token: &str| -> Result<(Vec<u8>, Vec<u8>), String> {
        let (message, sig) = token.rsplit_once('.').ok_or("not a JWT")?;
        Ok((message.as_bytes().to_vec(), URL_SAFE_NO_PAD.decode(sig).map_err(|e| e.to_string())?))
    };
    let (es_message, es_sig) = parts(tokens.es256)?;
    let point = es256_point(keys)?;
    let unparsed = signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point);
    let parsed = unparsed.parse().map_err(|e| e.to_string())?;
    if unparsed.verify(&es_message, &es_sig).is_err() || parsed.verify_sig(&es_message, &es_sig).is_err() {
        return Err("the ES256 signature does not verify on its own".into());
    }
    let (hs_message, hs_sig) = parts(tokens.hs256)?;
    let hkey = hmac::Key::new(hmac::HMAC_SHA256, tokens.secret);
    if hmac::verify(&hkey, &hs_message, &hs_sig).is_err() {
        return Err("the HS256 signature does not verify on its own".into());
    }
    let payload = tokens.es256.split('.').nth(1).ok_or("not a JWT")?;

    let mut fs: Vec<Timed<'_>> = vec![
        ("`verify_jwt`, HS256 user token", Box::new(|| sink(keys.verify_jwt(tokens.hs256)))),
        ("`verify_jwt`, ES256 user token", Box::new(|| sink(keys.verify_jwt(tokens.es256)))),
        ("`authenticate`, anon key (apikey and bearer)", Box::new(|| sink(authenticate(&anon_bearer)))),
        ("`authenticate`, HS256 user token", Box::new(|| sink(authenticate(&hs_bearer)))),
        ("`authenticate`, ES256 user token", Box::new(|| sink(authenticate(&es_bearer)))),
        ("`claims_json` (for `request.jwt.claims`), anon", Box::new(|| sink(anon.claims_json()))),
        ("`claims_json` (for `request.jwt.claims`), user", Box::new(|| sink(user.claims_json()))),
        (
            "ES256 signature only, key parsed per call (as jsonwebtoken)",
            Box::new(|| sink(unparsed.verify(&es_message, &es_sig))),
        ),
        (
            "ES256 signature only, key parsed once (`ParsedPublicKey`)",
            Box::new(|| sink(parsed.verify_sig(&es_message, &es_sig))),
        ),
        (
            "HS256 signature only, key set up per call (as jsonwebtoken)",
            Box::new(|| {
                let key = hmac::Key::new(hmac::HMAC_SHA256, tokens.secret);
                sink(hmac::verify(&key, &hs_message, &hs_sig));
            }),
        ),
        ("HS256 signature only, key set up once", Box::new(|| sink(hmac::verify(&hkey, &hs_message, &hs_sig)))),
        (
            "claims: base64url + JSON into a `Map`, once",
            Box::new(|| {
                let raw = URL_SAFE_NO_PAD.decode(payload).unwrap_or_default();
                sink(serde_json::from_slice::<Map<String, Value>>(&raw));
            }),
        ),
        ("`Principal::from_claims` (an `Arc` clone)", Box::new(|| sink(Principal::from_claims(claims.clone())))),
    ];
    Ok(interleaved(each, &mut fs))
}

/// The project's ES256 public key as an uncompressed point, from its JWKS.
fn es256_point(keys: &ProjectKeys) -> Result<Vec<u8>, String> {
    let jwks = keys.jwks();
    let coordinate = |name: &str| -> Result<Vec<u8>, String> {
        let b64 = jwks["keys"][0][name].as_str().ok_or("no ES256 key in the JWKS")?;
        URL_SAFE_NO_PAD.decode(b64).map_err(|e| e.to_string())
    };
    let mut point = vec![4u8];
    point.extend(coordinate("x")?);
    point.extend(coordinate("y")?);
    Ok(point)
}
