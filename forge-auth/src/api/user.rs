//! `GET /user`, `PUT /user` and `GET /reauthenticate`.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Guarded, RedirectQuery, SessionUser, UserUpdateGuard, normalize_email};
use crate::crypto::{ct_eq, stored_digest, token_hash};
use crate::error::{Error, ErrorKind, Result};
use crate::links::{self, LinkSpec, pkce_params};
use crate::mail::{Mail, MailKind};
use crate::model::{TokenColumn, User, user_json};
use crate::password::{self, Verified};
use crate::service::Auth;
use crate::sms::{Channel, Sms, SmsKind};
use crate::store::{Lookup, UserChange};
use crate::users::{self, Contact, merge_metadata};

pub(crate) async fn get_user(State(auth): State<Auth>, session: SessionUser) -> Result<Json<Value>> {
    Ok(Json(user_json(&auth, &mut *session.project.db().pool().acquire().await?, &session.user).await?))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct UpdateBody {
    email: Option<String>,
    phone: Option<String>,
    password: Option<String>,
    current_password: Option<String>,
    nonce: Option<String>,
    data: Option<Map<String, Value>>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    channel: Option<String>,
}

pub(crate) async fn update_user(
    State(auth): State<Auth>,
    session: SessionUser,
    Query(q): Query<RedirectQuery>,
    guarded: Guarded<UserUpdateGuard>,
) -> Result<Json<Value>> {
    let body: UpdateBody = guarded.json()?;
    let SessionUser { project, user, aal, .. } = session;
    let pool = project.db().pool();
    check_aal(pool, &user, &aal, &body).await?;
    // The reauthentication nonce is consumed in its own committed statement, before anything
    // else: a wrong guess spends it too.
    let has_password = user.encrypted_password.as_deref().is_some_and(|h| !h.is_empty());
    if needs_reauthentication(&body, auth.config().secure_password_change, has_password) {
        let nonce = body.nonce.as_deref().filter(|n| !n.is_empty()).ok_or_else(|| {
            Error::new(ErrorKind::ReauthenticationNeeded, "Password update requires reauthentication")
        })?;
        consume_nonce(&auth, pool, &user, nonce).await?;
    }

    let mut tx = pool.begin().await?;
    let mut user = auth.store().find(&mut tx, Lookup::Locked(user.id)).await?.ok_or_else(Error::user_not_found)?;
    if let Some(data) = body.data.clone() {
        let mut meta = user.user_metadata();
        merge_metadata(&mut meta, data);
        let change = UserChange { user_metadata: Some(meta), ..UserChange::default() };
        user = auth.store().update(&mut tx, user.id, change).await?;
    }
    if let Some(new_password) = body.password.as_deref() {
        user = set_password(&auth, &mut tx, user, new_password, body.current_password.as_deref()).await?;
    }
    let mut pending = None;
    if let Some(email) = body.email.as_deref().filter(|e| !e.trim().is_empty()) {
        let redirect_to = auth.redirect_target(&project, q.redirect_to.as_deref());
        (user, pending) = change_email(&auth, &project, &mut tx, user, email, redirect_to, &body).await?;
    }
    let mut pending_sms = None;
    if let Some(phone) = body.phone.as_deref().filter(|p| !p.trim().is_empty()) {
        (user, pending_sms) = change_phone(&auth, &mut tx, user, phone, body.channel.as_deref()).await?;
    }
    let user =
        auth.store().find(&mut tx, Lookup::Id(user.id)).await?.ok_or_else(|| Error::internal("user vanished"))?;
    tx.commit().await?;
    if let Some(mail) = pending {
        links::deliver(&auth, mail).await?;
    }
    if let Some(sms) = pending_sms {
        links::deliver_sms(&auth, sms).await?;
    }
    Ok(Json(user_json(&auth, &mut *pool.acquire().await?, &user).await?))
}

/// Whether the update touches a credential: the password, the email or the phone.
fn changes_credentials(body: &UpdateBody) -> bool {
    body.password.is_some()
        || body.email.as_deref().is_some_and(|e| !e.trim().is_empty())
        || body.phone.as_deref().is_some_and(|p| !p.trim().is_empty())
}

/// Whether a password change needs a reauthentication nonce: with secure password change
/// on, a user who has a password and does not give the current one must prove it otherwise.
fn needs_reauthentication(body: &UpdateBody, secure_password_change: bool, has_password: bool) -> bool {
    body.password.is_some() && body.current_password.is_none() && secure_password_change && has_password
}

/// A user with a verified factor changes credentials only from an AAL2 session.
async fn check_aal(pool: &sqlx::PgPool, user: &User, aal: &str, body: &UpdateBody) -> Result<()> {
    if !changes_credentials(body) || aal == "aal2" {
        return Ok(());
    }
    let verified_factor: bool =
        sqlx::query_scalar("select exists (select 1 from auth.mfa_factors where user_id = $1 and status = 'verified')")
            .bind(user.id)
            .fetch_one(pool)
            .await?;
    if verified_factor {
        return Err(Error::new(
            ErrorKind::InsufficientAalForUpdate,
            "AAL2 session is required to update email or password when MFA is enabled.",
        ));
    }
    Ok(())
}

/// Sets a new password: checked against the policy, refused when it is the old one, and,
/// when the current password is given, only if it is right.
async fn set_password(
    auth: &Auth,
    tx: &mut sqlx::PgConnection,
    user: User,
    new_password: &str,
    current: Option<&str>,
) -> Result<User> {
    if user.is_anonymous && user.email.as_deref().is_none_or(str::is_empty) {
        return Err(Error::new(ErrorKind::UserStateInvalid, "Anonymous users cannot set a password without an email"));
    }
    auth.config().password_policy().check(new_password).map_err(Error::weak_password)?;
    let stored = user.encrypted_password.clone().filter(|h| !h.is_empty());
    if let Some(stored) = &stored
        && matches!(blocking_verify(new_password, stored).await?, Verified::Valid { .. })
    {
        return Err(Error::new(ErrorKind::SamePassword, "New password should be different from the old password."));
    }
    if let Some(current) = current {
        let ok = match &stored {
            Some(s) => matches!(blocking_verify(current, s).await?, Verified::Valid { .. }),
            None => false,
        };
        if !ok {
            return Err(Error::new(
                ErrorKind::CurrentPasswordInvalid,
                "Current password required when setting new password.",
            ));
        }
    }
    let hash = {
        let p = new_password.to_owned();
        tokio::task::spawn_blocking(move || password::hash(&p)).await.map_err(Error::internal)??
    };
    let change = UserChange { password_hash: Some(hash), ..UserChange::default() };
    auth.store().update(tx, user.id, change).await
}

/// Changes the email: at once with autoconfirm, else pending until the link sent to the new
/// address (returned, to deliver after commit) is followed.
async fn change_email(
    auth: &Auth,
    project: &forge_core::Project,
    tx: &mut sqlx::PgConnection,
    mut user: User,
    email: &str,
    redirect_to: String,
    body: &UpdateBody,
) -> Result<(User, Option<Mail>)> {
    let email = normalize_email(email)?;
    if user.email.as_deref() == Some(email.as_str()) {
        return Ok((user, None));
    }
    users::ensure_free(auth, tx, Contact::Email(&email), Some(user.id)).await?;
    if auth.config().mailer_autoconfirm {
        let change = UserChange {
            email: Some(Some(email.clone())),
            email_confirmed: Some(true),
            email_change: Some(String::new()),
            anonymous: Some(false),
            ..UserChange::default()
        };
        user = auth.store().update(tx, user.id, change).await?;
        users::set_identity(auth, tx, user.id, Contact::Email(&email), true).await?;
        return Ok((user, None));
    }
    let change = UserChange { email_change: Some(email.clone()), ..UserChange::default() };
    user = auth.store().update(tx, user.id, change).await?;
    let spec = LinkSpec {
        kind: MailKind::EmailChange,
        address: email,
        redirect_to,
        pkce: pkce_params(body.code_challenge.as_deref(), body.code_challenge_method.as_deref())?,
        reset: false,
    };
    let mail = links::prepare(auth, project, tx, &user, &spec).await?;
    Ok((user, Some(mail)))
}

/// Changes the phone: at once with SMS autoconfirm, else pending until the code texted to
/// the new number (returned, to deliver after commit) is verified.
async fn change_phone(
    auth: &Auth,
    tx: &mut sqlx::PgConnection,
    mut user: User,
    phone: &str,
    channel: Option<&str>,
) -> Result<(User, Option<Sms>)> {
    let phone = super::phone::enabled_phone(auth, phone)?;
    let channel = super::phone::channel(channel)?;
    if user.phone.as_deref() == Some(phone.as_str()) {
        return Ok((user, None));
    }
    users::ensure_free(auth, tx, Contact::Phone(&phone), Some(user.id)).await?;
    if auth.config().sms_autoconfirm {
        let change = UserChange {
            phone: Some(Some(phone.clone())),
            phone_confirmed: Some(true),
            phone_change: Some(String::new()),
            anonymous: Some(false),
            ..UserChange::default()
        };
        user = auth.store().update(tx, user.id, change).await?;
        users::set_identity(auth, tx, user.id, Contact::Phone(&phone), true).await?;
        return Ok((user, None));
    }
    let change = UserChange { phone_change: Some(phone.clone()), ..UserChange::default() };
    user = auth.store().update(tx, user.id, change).await?;
    let sms = links::prepare_sms(auth, tx, &user, SmsKind::PhoneChange, &phone, channel, false).await?;
    Ok((user, Some(sms)))
}

async fn blocking_verify(password: &str, stored: &str) -> Result<Verified> {
    let (p, s) = (password.to_owned(), stored.to_owned());
    Ok(tokio::task::spawn_blocking(move || password::verify(&p, &s)).await.map_err(Error::internal)??)
}

/// Checks and consumes a reauthentication nonce.
async fn consume_nonce(auth: &Auth, pool: &sqlx::PgPool, user: &User, nonce: &str) -> Result<()> {
    auth.0.limits.guess(&user.id.to_string())?;
    let address = reauthentication_address(user).unwrap_or_default();
    let by_text = user.email.as_deref().is_none_or(str::is_empty);
    let marks = links::Marks { sms: by_text, ..links::Marks::default() };
    let presented = marks.apply(&stored_digest(&token_hash(&address, nonce.trim())));
    let ttl = if by_text { auth.config().sms_otp_exp } else { auth.config().otp_exp };
    let mut tx = pool.begin().await?;
    let locked = auth.store().find(&mut tx, Lookup::Locked(user.id)).await?.ok_or_else(Error::user_not_found)?;
    let (expected, sent_at) = TokenColumn::Reauthentication.stored(&locked);
    let expected = expected.unwrap_or_default().to_owned();
    auth.store().update(&mut tx, user.id, UserChange::default().token(TokenColumn::Reauthentication, "")).await?;
    tx.commit().await?;
    let fresh = sent_at.is_some_and(|t| {
        t + time::Duration::seconds(i64::try_from(ttl).unwrap_or(600)) >= time::OffsetDateTime::now_utc()
    });
    if expected.is_empty() || !ct_eq(&expected, &presented) || !fresh {
        return Err(Error::new(ErrorKind::ReauthenticationNotValid, "Requires reauthentication nonce to be valid"));
    }
    Ok(())
}

/// Where a reauthentication nonce goes: the email, else a confirmed phone.
fn reauthentication_address(user: &User) -> Option<String> {
    match user.email.as_deref().filter(|e| !e.is_empty()) {
        Some(e) => Some(e.to_owned()),
        None => user.phone.clone().filter(|p| !p.is_empty()),
    }
}

pub(crate) async fn reauthenticate(State(auth): State<Auth>, session: SessionUser) -> Result<Json<Value>> {
    let SessionUser { project, user, .. } = session;
    let Some(address) = reauthentication_address(&user) else {
        return Err(Error::new(
            ErrorKind::UserStateInvalid,
            "Reauthentication requires the user to have an email or a phone number",
        ));
    };
    let by_email = user.email.as_deref() == Some(address.as_str());
    if by_email && !user.email_confirmed() {
        return Err(Error::new(ErrorKind::EmailNotConfirmed, "Please verify your email first."));
    }
    if !by_email && user.phone_confirmed_at.is_none() {
        return Err(Error::new(ErrorKind::PhoneNotConfirmed, "Please verify your phone first."));
    }
    let mut tx = project.db().pool().begin().await?;
    if by_email {
        let spec = LinkSpec {
            kind: MailKind::Reauthentication,
            address,
            redirect_to: auth.site_url(&project),
            pkce: None,
            reset: false,
        };
        let mail = links::prepare(&auth, &project, &mut tx, &user, &spec).await?;
        tx.commit().await?;
        links::deliver(&auth, mail).await?;
    } else {
        let sms =
            links::prepare_sms(&auth, &mut tx, &user, SmsKind::Reauthentication, &address, Channel::Sms, false).await?;
        tx.commit().await?;
        links::deliver_sms(&auth, sms).await?;
    }
    Ok(Json(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: Value) -> UpdateBody {
        serde_json::from_value(json).expect("an update body")
    }

    #[test]
    fn credentials_are_the_password_a_non_blank_email_or_phone() {
        assert!(changes_credentials(&body(json!({ "password": "x" }))));
        assert!(changes_credentials(&body(json!({ "email": "a@b.c" }))));
        assert!(changes_credentials(&body(json!({ "phone": "15550001111" }))));
        assert!(!changes_credentials(&body(json!({ "email": "  ", "phone": "" }))));
        assert!(!changes_credentials(&body(json!({ "data": { "name": "Ann" } }))));
    }

    #[test]
    fn reauthentication_is_needed_only_for_a_password_change_without_the_current_one() {
        let change = body(json!({ "password": "new one" }));
        assert!(needs_reauthentication(&change, true, true));
        assert!(!needs_reauthentication(&change, false, true), "secure password change is off");
        assert!(!needs_reauthentication(&change, true, false), "a user without a password sets one");
        let with_current = body(json!({ "password": "new one", "current_password": "old one" }));
        assert!(!needs_reauthentication(&with_current, true, true));
        assert!(!needs_reauthentication(&body(json!({ "email": "a@b.c" })), true, true));
    }
}
