//! `POST /recover`, `/otp`, `/magiclink`, `/resend`, and `GET|POST /verify`.
//!
//! `recover`, `otp` (with `create_user`), `magiclink` and `resend` answer the same for known
//! and unknown addresses, and count the per-address re-send interval for both.

use axum::Json;
use axum::extract::{Query, State};
use axum::response::Response;
use forge_core::Project;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    Guarded, MagiclinkGuard, OtpGuard, RecoverGuard, RedirectQuery, ResendGuard, VerifyGuard, normalize_email,
    redirect, redirect_error,
};
use http::StatusCode;

const SEE_OTHER: StatusCode = StatusCode::SEE_OTHER;
use crate::error::{Error, ErrorKind, Result};
use crate::limit::Route;
use crate::links::{self, LinkSpec, Presented, VerifyType, encode, pkce_params};
use crate::mail::MailKind;
use crate::service::Auth;
use crate::session::{self, ClientInfo, SessionExtras};
use crate::store::{Lookup, NewUser};

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct EmailBody {
    email: Option<String>,
    phone: Option<String>,
    data: Option<Map<String, Value>>,
    create_user: Option<bool>,
    #[serde(rename = "type")]
    kind: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    channel: Option<String>,
}

impl EmailBody {
    /// The phone number, when the request is about one (and not about an email).
    fn phone_only(&self) -> Option<&str> {
        let phone = self.phone.as_deref().filter(|p| !p.trim().is_empty())?;
        self.email.as_deref().is_none_or(|e| e.trim().is_empty()).then_some(phone)
    }
}

fn required_email(body: &EmailBody) -> Result<String> {
    let email = body
        .email
        .as_deref()
        .filter(|e| !e.trim().is_empty())
        .ok_or_else(|| Error::validation("An email address is required"))?;
    normalize_email(email)
}

pub(crate) async fn recover(
    State(auth): State<Auth>,
    project: Project,
    Query(q): Query<RedirectQuery>,
    guarded: Guarded<RecoverGuard>,
) -> Result<Json<Value>> {
    let body: EmailBody = guarded.json()?;
    let email = required_email(&body)?;
    let pkce = pkce_params(body.code_challenge.as_deref(), body.code_challenge_method.as_deref())?;
    let mut tx = project.db().pool().begin().await?;
    let mut pending = None;
    match auth.store().find(&mut tx, Lookup::Email(&email)).await? {
        Some(user) => {
            let spec = LinkSpec {
                kind: MailKind::Recovery,
                address: email,
                redirect_to: auth.redirect_target(&project, q.redirect_to.as_deref()),
                pkce,
                reset: false,
            };
            pending = Some(links::prepare(&auth, &project, &mut tx, &user, &spec).await?);
        }
        None => auth.0.limits.mail(MailKind::Recovery, &email)?,
    }
    tx.commit().await?;
    if let Some(mail) = pending {
        links::deliver_later(&auth, mail);
    }
    Ok(Json(json!({})))
}

pub(crate) async fn otp(
    State(auth): State<Auth>,
    project: Project,
    Query(q): Query<RedirectQuery>,
    guarded: Guarded<OtpGuard>,
) -> Result<Json<Value>> {
    let body: EmailBody = guarded.json()?;
    if let Some(phone) = body.phone_only() {
        let channel = super::phone::channel(body.channel.as_deref())?;
        let create_user = body.create_user.unwrap_or(true);
        return Ok(Json(super::phone::otp(&auth, &project, phone, body.data.clone(), create_user, channel).await?));
    }
    send_magic_link(&auth, &project, &body, q.redirect_to.as_deref(), body.create_user.unwrap_or(true)).await?;
    Ok(Json(json!({})))
}

pub(crate) async fn magiclink(
    State(auth): State<Auth>,
    project: Project,
    Query(q): Query<RedirectQuery>,
    guarded: Guarded<MagiclinkGuard>,
) -> Result<Json<Value>> {
    let body: EmailBody = guarded.json()?;
    send_magic_link(&auth, &project, &body, q.redirect_to.as_deref(), true).await?;
    Ok(Json(json!({})))
}

/// Signs the address up if needed (and allowed), then sends a magic link with an OTP. A user
/// who has not confirmed yet gets the confirmation mail instead.
async fn send_magic_link(
    auth: &Auth,
    project: &Project,
    body: &EmailBody,
    redirect_to: Option<&str>,
    create_user: bool,
) -> Result<()> {
    let config = auth.config();
    if !config.email_enabled {
        return Err(Error::new(ErrorKind::EmailProviderDisabled, "Email logins are disabled"));
    }
    let email = required_email(body)?;
    let pkce = pkce_params(body.code_challenge.as_deref(), body.code_challenge_method.as_deref())?;
    let redirect_to = auth.redirect_target(project, redirect_to);
    let mut tx = project.db().pool().begin().await?;
    let (user, existing) = match auth.store().find(&mut tx, Lookup::Email(&email)).await? {
        Some(u) => (u, true),
        None if !create_user => return Err(Error::new(ErrorKind::OtpDisabled, "Signups not allowed for otp")),
        None if config.disable_signup => {
            return Err(Error::new(ErrorKind::SignupDisabled, "Signups not allowed for this instance"));
        }
        None => {
            let new = NewUser {
                email: Some(email.clone()),
                user_metadata: body.data.clone().unwrap_or_default(),
                email_confirmed: config.mailer_autoconfirm,
                ..NewUser::default()
            };
            (auth.store().create(&mut tx, new).await?, false)
        }
    };
    let spec = if user.email_confirmed() {
        LinkSpec { kind: MailKind::MagicLink, address: email, redirect_to, pkce, reset: false }
    } else {
        // An account someone else may have set up: using this mail drops what they set.
        LinkSpec { kind: MailKind::Confirmation, address: email, redirect_to, pkce, reset: existing }
    };
    let mail = links::prepare(auth, project, &mut tx, &user, &spec).await?;
    tx.commit().await?;
    links::deliver_later(auth, mail);
    Ok(())
}

pub(crate) async fn resend(
    State(auth): State<Auth>,
    project: Project,
    Query(q): Query<RedirectQuery>,
    guarded: Guarded<ResendGuard>,
) -> Result<Json<Value>> {
    let body: EmailBody = guarded.json()?;
    let kind = body.kind.as_deref().unwrap_or_default();
    if matches!(kind, "sms" | "phone_change") {
        let phone = body.phone.as_deref().filter(|p| !p.trim().is_empty());
        let phone = phone.ok_or_else(|| Error::validation("A phone number is required"))?;
        return Ok(Json(super::phone::resend(&auth, &project, phone, kind).await?));
    }
    let mail_kind = match kind {
        "signup" => MailKind::Confirmation,
        "email_change" => MailKind::EmailChange,
        _ => return Err(Error::validation("Missing one of these types: signup, email_change, sms, phone_change")),
    };
    let email = required_email(&body)?;
    let pkce = pkce_params(body.code_challenge.as_deref(), body.code_challenge_method.as_deref())?;
    let mut tx = project.db().pool().begin().await?;
    let user = match mail_kind {
        MailKind::Confirmation => {
            auth.store().find(&mut tx, Lookup::Email(&email)).await?.filter(|u| !u.email_confirmed())
        }
        _ => auth.store().find(&mut tx, Lookup::PendingEmail(&email)).await?,
    };
    let mut pending = None;
    match user {
        Some(user) => {
            let spec = LinkSpec {
                kind: mail_kind,
                address: email,
                redirect_to: auth.redirect_target(&project, q.redirect_to.as_deref()),
                pkce,
                reset: false,
            };
            pending = Some(links::prepare(&auth, &project, &mut tx, &user, &spec).await?);
        }
        None => auth.0.limits.mail(mail_kind, &email)?,
    }
    tx.commit().await?;
    if let Some(mail) = pending {
        links::deliver_later(&auth, mail);
    }
    Ok(Json(json!({})))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct VerifyBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    token: Option<String>,
    token_hash: Option<String>,
}

pub(crate) async fn verify_post(
    State(auth): State<Auth>,
    project: Project,
    client: ClientInfo,
    guarded: Guarded<VerifyGuard>,
) -> Result<Json<Value>> {
    let body: VerifyBody = guarded.json()?;
    let verify_type = VerifyType::parse(body.kind.as_deref().unwrap_or_default())?;
    // A code is bound to the address (or number) it went to.
    let address = if verify_type.is_phone() {
        match body.phone.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => Some(super::phone::enabled_phone(&auth, p)?),
            None => None,
        }
    } else {
        match body.email.as_deref().filter(|e| !e.is_empty()) {
            Some(e) => Some(normalize_email(e)?),
            None => None,
        }
    };
    let presented = match (&body.token_hash, &body.token, &address) {
        (Some(h), None, _) if !h.is_empty() && !verify_type.is_phone() => Presented::Hash(h),
        (None, Some(t), Some(a)) if !t.is_empty() => {
            auth.0.limits.guess(a)?;
            Presented::Otp { address: a, otp: t }
        }
        (None, Some(_), None) if verify_type.is_phone() => {
            return Err(Error::validation("Verify requires a phone number with the token"));
        }
        _ => return Err(Error::validation("Verify requires either a token or a token hash")),
    };
    let mut tx = project.db().pool().begin().await?;
    let verified = links::verify(&auth, &mut tx, verify_type, presented).await?;
    if verified.user.is_banned() {
        return Err(Error::new(ErrorKind::UserBanned, "User is banned"));
    }
    let issued = session::start(&auth, &mut tx, &verified.user, "otp", &client).await?;
    Ok(Json(session::respond(&auth, &project, tx, issued, SessionExtras::default()).await?))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct VerifyQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    token: Option<String>,
    redirect_to: Option<String>,
}

/// The link in a mail: 303 to `redirect_to` with the session in the fragment (PKCE: a `code`
/// in the query), or with `error`, `error_code` and `error_description`.
pub(crate) async fn verify_get(
    State(auth): State<Auth>,
    project: Project,
    client: ClientInfo,
    Query(q): Query<VerifyQuery>,
) -> Response {
    let target = auth.redirect_target(&project, q.redirect_to.as_deref());
    match verify_link(&auth, &project, &client, &q).await {
        Ok(Landing::Session(fragment)) => redirect(SEE_OTHER, &format!("{target}#{fragment}")),
        Ok(Landing::Code(code)) => {
            let sep = if target.contains('?') { '&' } else { '?' };
            redirect(SEE_OTHER, &format!("{target}{sep}code={}", encode(&code)))
        }
        Err(e) => redirect_error(SEE_OTHER, &target, &e, Some("Email link is invalid or has expired"), "&sb="),
    }
}

enum Landing {
    Session(String),
    Code(String),
}

async fn verify_link(auth: &Auth, project: &Project, client: &ClientInfo, q: &VerifyQuery) -> Result<Landing> {
    // Over the limit, a link lands on the redirect with the error, as GoTrue's does.
    auth.0.limits.check(Route::Verify, client.ip)?;
    let verify_type = VerifyType::parse(q.kind.as_deref().unwrap_or_default())?;
    let token =
        q.token.as_deref().filter(|t| !t.is_empty()).ok_or_else(|| Error::validation("Verify requires a token"))?;
    let mut tx = project.db().pool().begin().await?;
    let verified = links::verify(auth, &mut tx, verify_type, Presented::Hash(token)).await?;
    if verified.user.is_banned() {
        return Err(Error::new(ErrorKind::UserBanned, "User is banned"));
    }
    if verified.pkce {
        let (code, _) = links::issue_auth_code(&mut tx, verified.user.id, verified.verify_type.method()).await?;
        tx.commit().await?;
        return Ok(Landing::Code(code));
    }
    let issued = session::start(auth, &mut tx, &verified.user, "otp", client).await?;
    let session = session::respond(auth, project, tx, issued, SessionExtras::default()).await?;
    let fragment = format!(
        "access_token={}&expires_at={}&expires_in={}&refresh_token={}&token_type=bearer&type={}&sb=",
        session["access_token"].as_str().unwrap_or_default(),
        session["expires_at"],
        session["expires_in"],
        session["refresh_token"].as_str().unwrap_or_default(),
        verified.verify_type.as_str(),
    );
    Ok(Landing::Session(fragment))
}
