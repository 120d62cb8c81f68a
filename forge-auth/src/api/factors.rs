//! MFA with TOTP and phone factors: `POST /factors` (enroll), `POST /factors/{id}/challenge`,
//! `POST /factors/{id}/verify` and `DELETE /factors/{id}`.
//!
//! A verified code upgrades the caller's session to `aal2` and adds `totp` (or `mfa/phone`)
//! to its `amr`. Each TOTP code (each 30-second step) is accepted once per factor, and each
//! challenge once. A phone factor's challenge texts a code whose digest the challenge keeps.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use totp_rs::{Builder, Secret, Totp};
use uuid::Uuid;

use super::{Guarded, JsonBody, MfaGuard, SessionUser};
use crate::crypto::{ct_eq, stored_digest, token_hash};
use crate::error::{Error, ErrorKind, Result};
use crate::links;
use crate::model::Factor;
use crate::service::Auth;
use crate::session::{self, ClientInfo, Issued, SessionExtras};
use crate::sms::SmsKind;

/// How long a challenge may be answered.
const CHALLENGE_TTL: time::Duration = time::Duration::minutes(5);

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct EnrollBody {
    factor_type: Option<String>,
    friendly_name: Option<String>,
    issuer: Option<String>,
    phone: Option<String>,
}

fn totp(secret: impl Into<Secret>, issuer: &str, account: &str) -> Result<Totp> {
    let issuer = issuer.replace(':', "");
    let account = if account.is_empty() { "user".to_owned() } else { account.replace(':', "") };
    Builder::new()
        .with_secret(secret)
        .with_issuer(Some(issuer))
        .with_account_name(account)
        .build()
        .map_err(|e| Error::internal(e.to_string()))
}

pub(crate) async fn enroll(
    State(auth): State<Auth>,
    session: SessionUser,
    JsonBody(body): JsonBody<EnrollBody>,
) -> Result<Json<Value>> {
    let phone = match body.factor_type.as_deref() {
        Some("totp") => None,
        Some("phone") if !auth.config().mfa_phone_enabled => {
            return Err(Error::new(ErrorKind::MfaPhoneEnrollNotEnabled, "MFA enroll is disabled for Phone"));
        }
        Some("phone") => Some(crate::users::normalize_phone(body.phone.as_deref().unwrap_or_default())?),
        Some("webauthn") => {
            return Err(Error::new(ErrorKind::MfaWebauthnEnrollNotEnabled, "MFA enroll is disabled for WebAuthn"));
        }
        _ => return Err(Error::validation("factor_type needs to be totp, phone or webauthn")),
    };
    let SessionUser { project, user, aal, .. } = session;
    let pool = project.db().pool();
    let factors = Factor::of_user(pool, user.id).await?;
    if factors.iter().any(|f| f.status == "verified") && aal != "aal2" {
        return Err(Error::new(ErrorKind::InsufficientAal, "AAL2 required to enroll a new factor"));
    }
    if factors.len() >= auth.config().mfa_max_factors {
        return Err(Error::new(
            ErrorKind::TooManyEnrolledMfaFactors,
            "Maximum number of verified factors reached, unenroll to continue",
        ));
    }
    let friendly_name = body.friendly_name.unwrap_or_default();
    if !friendly_name.is_empty() && factors.iter().any(|f| f.friendly_name.as_deref() == Some(friendly_name.as_str())) {
        return Err(Error::new(
            ErrorKind::MfaFactorNameConflict,
            format!("A factor with the friendly name \"{friendly_name}\" for this user already exists"),
        ));
    }
    if let Some(phone) = phone {
        let id = Uuid::new_v4();
        sqlx::query(
            "insert into auth.mfa_factors (id, user_id, friendly_name, factor_type, status, created_at, updated_at, \
             phone) values ($1, $2, $3, 'phone', 'unverified', now(), now(), $4)",
        )
        .bind(id)
        .bind(user.id)
        .bind(&friendly_name)
        .bind(&phone)
        .execute(pool)
        .await?;
        return Ok(Json(json!({ "id": id, "type": "phone", "friendly_name": friendly_name, "phone": phone })));
    }
    let issuer = match body.issuer.filter(|i| !i.is_empty()).or_else(|| auth.config().mfa_issuer.clone()) {
        Some(i) => i,
        None => host_of(&auth.site_url(&project)),
    };
    let secret = crate::crypto::random_bytes::<20>().to_vec();
    let totp = totp(secret.clone(), &issuer, user.email.as_deref().unwrap_or_default())?;
    let uri = totp.to_url().map_err(|e| Error::internal(e.to_string()))?;
    let secret_b32 = Secret::from(secret).to_base32();
    let qr = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| Error::internal(e.to_string()))?;
    let svg = qr.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).build();
    let id = Uuid::new_v4();
    sqlx::query(
        "insert into auth.mfa_factors (id, user_id, friendly_name, factor_type, status, created_at, updated_at, secret) \
         values ($1, $2, $3, 'totp', 'unverified', now(), now(), $4)",
    )
    .bind(id)
    .bind(user.id)
    .bind(&friendly_name)
    .bind(&secret_b32)
    .execute(pool)
    .await?;
    Ok(Json(json!({
        "id": id,
        "type": "totp",
        "friendly_name": friendly_name,
        "totp": { "qr_code": svg, "secret": secret_b32, "uri": uri },
    })))
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#']).next().unwrap_or(rest).to_owned()
}

async fn own_factor(pool: &sqlx::PgPool, user_id: Uuid, factor_id: &str) -> Result<Factor> {
    let not_found = || Error::new(ErrorKind::MfaFactorNotFound, "Factor not found");
    let id: Uuid = factor_id.parse().map_err(|_| not_found())?;
    Factor::of_user(pool, user_id).await?.into_iter().find(|f| f.id == id).ok_or_else(not_found)
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct ChallengeBody {
    channel: Option<String>,
}

pub(crate) async fn challenge(
    State(auth): State<Auth>,
    session: SessionUser,
    client: ClientInfo,
    Path(id): Path<String>,
    guarded: Guarded<MfaGuard>,
) -> Result<Json<Value>> {
    let body: ChallengeBody = guarded.json()?;
    let pool = session.project.db().pool();
    let factor = own_factor(pool, session.user.id, &id).await?;
    let challenge_id = Uuid::new_v4();
    let ip = client.ip.map_or_else(|| "0.0.0.0".to_owned(), |ip| ip.to_string());
    // A phone factor's code goes out by text; the challenge keeps only its digest.
    let text = match (factor.factor_type.as_str(), factor.phone.as_deref()) {
        ("phone", _) if !auth.config().mfa_phone_enabled => {
            return Err(Error::new(ErrorKind::MfaPhoneVerifyNotEnabled, "MFA verification is disabled for Phone"));
        }
        ("phone", Some(phone)) => {
            let channel = super::phone::channel(body.channel.as_deref())?;
            auth.0.limits.sms(SmsKind::Mfa, phone)?;
            let otp = crate::crypto::random_otp(auth.config().sms_otp_digits());
            let digest = stored_digest(&token_hash(phone, &otp));
            Some((links::render_sms(&auth, SmsKind::Mfa, phone, channel, otp), digest))
        }
        ("phone", None) => return Err(Error::internal("phone factor without a number")),
        _ => None,
    };
    let created: OffsetDateTime = sqlx::query_scalar(
        "insert into auth.mfa_challenges (id, factor_id, created_at, ip_address, otp_code) \
         values ($1, $2, now(), $3::inet, $4) returning created_at",
    )
    .bind(challenge_id)
    .bind(factor.id)
    .bind(ip)
    .bind(text.as_ref().map(|(_, digest)| digest.clone()))
    .fetch_one(pool)
    .await?;
    if let Some((sms, _)) = text {
        links::deliver_sms(&auth, sms).await?;
    }
    Ok(Json(json!({
        "id": challenge_id,
        "type": factor.factor_type,
        "expires_at": (created + CHALLENGE_TTL).unix_timestamp(),
    })))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct VerifyBody {
    challenge_id: Option<String>,
    code: Option<String>,
}

pub(crate) async fn verify(
    State(auth): State<Auth>,
    session: SessionUser,
    Path(id): Path<String>,
    guarded: Guarded<MfaGuard>,
) -> Result<Json<Value>> {
    let body: VerifyBody = guarded.json()?;
    let SessionUser { project, user, session_id, .. } = session;
    let session_id =
        session_id.ok_or_else(|| Error::new(ErrorKind::SessionNotFound, "MFA verification requires a session"))?;
    let pool = project.db().pool();
    let factor = own_factor(pool, user.id, &id).await?;
    let challenge_id: Uuid = body
        .challenge_id
        .as_deref()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Error::new(ErrorKind::MfaChallengeExpired, "MFA challenge not found"))?;
    let code = body.code.unwrap_or_default();
    auth.0.limits.guess(&factor.id.to_string())?;

    let mut tx = pool.begin().await?;
    let challenge: Option<(OffsetDateTime, Option<OffsetDateTime>, Option<String>)> = sqlx::query_as(
        "select created_at, verified_at, otp_code from auth.mfa_challenges where id = $1 and factor_id = $2 for update",
    )
    .bind(challenge_id)
    .bind(factor.id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((created, verified_at, otp_code)) = challenge else {
        return Err(Error::new(ErrorKind::MfaFactorNotFound, "Challenge and factor do not match"));
    };
    if verified_at.is_some() || created + CHALLENGE_TTL < OffsetDateTime::now_utc() {
        sqlx::query("delete from auth.mfa_challenges where id = $1").bind(challenge_id).execute(&mut *tx).await?;
        tx.commit().await?;
        return Err(Error::new(
            ErrorKind::MfaChallengeExpired,
            format!(
                "MFA challenge {challenge_id} has expired, verify against another challenge or create a new challenge."
            ),
        ));
    }
    if factor.factor_type == "phone" {
        // A challenge is answered once, right or wrong.
        sqlx::query("update auth.mfa_challenges set verified_at = now() where id = $1")
            .bind(challenge_id)
            .execute(&mut *tx)
            .await?;
        let phone = factor.phone.as_deref().unwrap_or_default();
        let presented = stored_digest(&token_hash(phone, code.trim()));
        if !otp_code.as_deref().is_some_and(|expected| ct_eq(expected, &presented)) {
            tx.commit().await?;
            return Err(Error::new(ErrorKind::MfaVerificationFailed, "Invalid MFA Phone code entered"));
        }
        sqlx::query(
            "update auth.mfa_factors set status = 'verified', updated_at = now(), last_challenged_at = now() \
             where id = $1",
        )
        .bind(factor.id)
        .execute(&mut *tx)
        .await?;
        return upgrade(&auth, &project, tx, user.id, session_id, factor.id, "mfa/phone").await.map(Json);
    }
    let secret = factor
        .secret
        .as_deref()
        .and_then(|s| Secret::try_from_base32(s).ok())
        .ok_or_else(|| Error::internal("factor has no usable secret"))?;
    let totp = totp(secret, "forge", "user")?;
    let now = u64::try_from(OffsetDateTime::now_utc().unix_timestamp()).unwrap_or_default();
    let step = totp.check(code.trim(), now).and_then(|s| i64::try_from(s).ok());
    let Some(step) = step else {
        return Err(Error::new(ErrorKind::MfaVerificationFailed, "Invalid TOTP code entered"));
    };
    // Each step's code is accepted once: the factor remembers the last step it accepted.
    let fresh = sqlx::query(
        "update auth.mfa_factors set status = 'verified', updated_at = now(), last_challenged_at = now(), \
         last_totp_step = $2 where id = $1 and (last_totp_step is null or last_totp_step < $2)",
    )
    .bind(factor.id)
    .bind(step)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if fresh == 0 {
        return Err(Error::new(ErrorKind::MfaVerificationFailed, "Invalid TOTP code entered"));
    }
    sqlx::query("update auth.mfa_challenges set verified_at = now() where id = $1")
        .bind(challenge_id)
        .execute(&mut *tx)
        .await?;
    upgrade(&auth, &project, tx, user.id, session_id, factor.id, "totp").await.map(Json)
}

/// Raises the session to `aal2` with `method` in its `amr`, and answers with a new session
/// (the old refresh tokens are revoked).
async fn upgrade(
    auth: &Auth,
    project: &forge_core::Project,
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    user_id: Uuid,
    session_id: Uuid,
    factor_id: Uuid,
    method: &str,
) -> Result<Value> {
    sqlx::query("update auth.sessions set aal = 'aal2', factor_id = $2, updated_at = now() where id = $1")
        .bind(session_id)
        .bind(factor_id)
        .execute(&mut *tx)
        .await?;
    session::add_amr(&mut tx, session_id, method).await?;
    sqlx::query(
        "update auth.refresh_tokens set revoked = true, updated_at = now() where session_id = $1 and not revoked",
    )
    .bind(session_id)
    .execute(&mut *tx)
    .await?;
    let refresh_token = session::new_refresh_token(&mut tx, user_id, session_id, None).await?;
    let issued = Issued { session_id, user_id, refresh_token };
    session::respond(auth, project, tx, issued, SessionExtras::default()).await
}

pub(crate) async fn unenroll(session: SessionUser, Path(id): Path<String>) -> Result<Json<Value>> {
    let pool = session.project.db().pool();
    let factor = own_factor(pool, session.user.id, &id).await?;
    if factor.status == "verified" && session.aal != "aal2" {
        return Err(Error::new(ErrorKind::InsufficientAalToUnenroll, "AAL2 required to unenroll verified factor"));
    }
    sqlx::query("delete from auth.mfa_factors where id = $1").bind(factor.id).execute(pool).await?;
    Ok(Json(json!({ "id": factor.id })))
}
