//! The phone halves of `POST /signup`, `/otp` and `/resend`: codes by text message.
//!
//! Numbers are stored as E.164 digits without `+`. A code is bound to the number it went to
//! (its hash covers both), is single-use, and expires after `sms_otp_exp` seconds. Answers do
//! not tell registered numbers from new ones, as for email.

use serde_json::{Map, Value, json};

use crate::error::{Error, ErrorKind, Result};
use crate::links;
use crate::service::Auth;
use crate::session::{self, ClientInfo, SessionExtras};
use crate::sms::{Channel, SmsKind};
use crate::store::{Lookup, NewUser};
use crate::users::normalize_phone;
use forge_core::Project;

/// `phone_provider_disabled` unless phone sign-in is on; else the number, normalized.
pub(crate) fn enabled_phone(auth: &Auth, phone: &str) -> Result<String> {
    if !auth.config().phone_enabled {
        return Err(Error::new(ErrorKind::PhoneProviderDisabled, "Phone logins are disabled"));
    }
    normalize_phone(phone)
}

/// The `channel` of a request (`sms` when absent).
pub(crate) fn channel(value: Option<&str>) -> Result<Channel> {
    match value.unwrap_or_default() {
        "" | "sms" => Ok(Channel::Sms),
        "whatsapp" => Ok(Channel::Whatsapp),
        other => Err(Error::validation(format!("Invalid channel {other:?}: use sms or whatsapp"))),
    }
}

/// Sign-up with a phone number and password. Confirmed at once with `sms_autoconfirm` (a
/// session is returned); otherwise a code is texted and the unconfirmed user returned.
pub(crate) async fn signup(
    auth: &Auth,
    project: &Project,
    client: &ClientInfo,
    phone: String,
    hash: String,
    metadata: Map<String, Value>,
    channel: Channel,
) -> Result<Value> {
    let autoconfirm = auth.config().sms_autoconfirm;
    let store = auth.store();
    let mut tx = project.db().pool().begin().await?;
    let user = match store.find(&mut tx, Lookup::Phone(&phone)).await? {
        Some(_) if autoconfirm => return Err(Error::new(ErrorKind::UserAlreadyExists, "User already registered")),
        Some(u) if u.phone_confirmed_at.is_some() => {
            // As for email: answer as for a new number, send nothing, count the interval.
            auth.0.limits.sms(SmsKind::Otp, &phone)?;
            return Ok(super::signup::obfuscated_user(None, Some(&phone), metadata));
        }
        Some(u) => {
            // Registered but unconfirmed: nothing changes without proof; the owner gets the
            // code again.
            let sms = links::prepare_sms(auth, &mut tx, &u, SmsKind::Otp, &phone, channel, false).await?;
            tx.commit().await?;
            links::deliver_sms_later(auth, sms);
            return Ok(super::signup::obfuscated_user(None, Some(&phone), metadata));
        }
        None => {
            let new = NewUser {
                phone: Some(phone.clone()),
                password_hash: Some(hash),
                user_metadata: metadata,
                phone_confirmed: autoconfirm,
                ..NewUser::default()
            };
            store.create(&mut tx, new).await?
        }
    };
    if autoconfirm {
        let issued = session::start(auth, &mut tx, &user, "password", client).await?;
        return session::respond(auth, project, tx, issued, SessionExtras::default()).await;
    }
    let sms = links::prepare_sms(auth, &mut tx, &user, SmsKind::Otp, &phone, channel, false).await?;
    let user = store.find(&mut tx, Lookup::Id(user.id)).await?.ok_or_else(|| Error::internal("user vanished"))?;
    tx.commit().await?;
    links::deliver_sms_later(auth, sms);
    crate::model::user_json(auth, &mut *project.db().pool().acquire().await?, &user).await
}

/// `POST /otp` with a phone: signs the number up if needed (and allowed) and texts a code.
/// Answers `{message_id}`.
pub(crate) async fn otp(
    auth: &Auth,
    project: &Project,
    phone: &str,
    data: Option<Map<String, Value>>,
    create_user: bool,
    channel: Channel,
) -> Result<Value> {
    let phone = enabled_phone(auth, phone)?;
    let config = auth.config();
    let store = auth.store();
    let mut tx = project.db().pool().begin().await?;
    let (user, existing) = match store.find(&mut tx, Lookup::Phone(&phone)).await? {
        Some(u) => (u, true),
        None if !create_user => return Err(Error::new(ErrorKind::OtpDisabled, "Signups not allowed for otp")),
        None if config.disable_signup => {
            return Err(Error::new(ErrorKind::SignupDisabled, "Signups not allowed for this instance"));
        }
        None => {
            let new =
                NewUser { phone: Some(phone.clone()), user_metadata: data.unwrap_or_default(), ..NewUser::default() };
            (store.create(&mut tx, new).await?, false)
        }
    };
    // A number someone else may have signed up: using this code drops what they set.
    let reset = existing && user.phone_confirmed_at.is_none();
    let sms = links::prepare_sms(auth, &mut tx, &user, SmsKind::Otp, &phone, channel, reset).await?;
    tx.commit().await?;
    let message_id = links::deliver_sms(auth, sms).await?;
    Ok(json!({ "message_id": message_id }))
}

/// `POST /resend` with a phone (`sms`: an unconfirmed sign-up; `phone_change`: a pending
/// change). Answers `{}` whether or not a text went out.
pub(crate) async fn resend(auth: &Auth, project: &Project, phone: &str, kind: &str) -> Result<Value> {
    let phone = enabled_phone(auth, phone)?;
    let store = auth.store();
    let mut tx = project.db().pool().begin().await?;
    let (user, sms_kind) = match kind {
        "sms" => {
            (store.find(&mut tx, Lookup::Phone(&phone)).await?.filter(|u| u.phone_confirmed_at.is_none()), SmsKind::Otp)
        }
        _ => (store.find(&mut tx, Lookup::PendingPhone(&phone)).await?, SmsKind::PhoneChange),
    };
    let Some(user) = user else {
        auth.0.limits.sms(sms_kind, &phone)?;
        return Ok(json!({}));
    };
    let sms = links::prepare_sms(auth, &mut tx, &user, sms_kind, &phone, Channel::Sms, false).await?;
    tx.commit().await?;
    links::deliver_sms_later(auth, sms);
    Ok(json!({}))
}
