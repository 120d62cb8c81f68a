//! One-time tokens: email OTPs and the links that carry their hashes, PKCE flow state, and
//! verification.
//!
//! An OTP is random digits; its link carries `token_hash` = SHA-224(address ‖ otp). Only a
//! SHA-256 digest of `token_hash` is stored, in the user's column for the flow. A token is
//! single-use (the column is cleared on success) and expires `otp_exp` seconds after it was
//! sent. Tokens issued for a PKCE flow are stored with a `pkce_` prefix and are exchanged for
//! an auth code rather than a session when followed as a link.

use forge_core::Project;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::crypto::{ChallengeMethod, random_otp, random_token, sha256_hex, stored_digest, token_hash};
use crate::error::{Error, ErrorKind, Result};
use crate::mail::{Mail, MailKind, TemplateData};
use crate::model::{TokenColumn, User};
use crate::service::Auth;
use crate::sms::{Channel, Sms, SmsKind};
use crate::store::{Lookup, UserChange};
use crate::users::Contact;

/// The kinds of verification, as sent in `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VerifyType {
    Signup,
    Invite,
    Recovery,
    Magiclink,
    EmailChange,
    Email,
    Sms,
    PhoneChange,
}

impl VerifyType {
    pub(crate) fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "signup" => Self::Signup,
            "invite" => Self::Invite,
            "recovery" => Self::Recovery,
            "magiclink" => Self::Magiclink,
            "email_change" => Self::EmailChange,
            "email" => Self::Email,
            "sms" => Self::Sms,
            "phone_change" => Self::PhoneChange,
            _ => return Err(Error::validation("Verify requires a verification type")),
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Invite => "invite",
            Self::Recovery => "recovery",
            Self::Magiclink => "magiclink",
            Self::EmailChange => "email_change",
            Self::Email => "email",
            Self::Sms => "sms",
            Self::PhoneChange => "phone_change",
        }
    }

    /// Whether the code went to a phone.
    pub(crate) fn is_phone(self) -> bool {
        matches!(self, Self::Sms | Self::PhoneChange)
    }

    /// The columns a token of this type may be in, in the order tried.
    fn columns(self) -> &'static [TokenColumn] {
        match self {
            Self::Signup | Self::Invite => &[TokenColumn::Confirmation],
            Self::Recovery | Self::Magiclink => &[TokenColumn::Recovery],
            Self::EmailChange => &[TokenColumn::EmailChangeNew],
            Self::Email | Self::Sms => &[TokenColumn::Confirmation, TokenColumn::Recovery],
            Self::PhoneChange => &[TokenColumn::PhoneChange],
        }
    }

    /// The AMR method a PKCE flow of this kind records (sessions straight from `verify`
    /// record `otp`, as GoTrue's do).
    pub(crate) fn method(self) -> &'static str {
        match self {
            Self::Signup => "email/signup",
            Self::Invite => "invite",
            Self::Recovery => "recovery",
            Self::Magiclink => "magiclink",
            Self::EmailChange => "email_change",
            Self::Email | Self::Sms => "otp",
            Self::PhoneChange => "phone_change",
        }
    }
}

/// What a link is for. The kind decides the token's column and verification type.
#[derive(Debug, Clone)]
pub(crate) struct LinkSpec {
    pub(crate) kind: MailKind,
    /// The address the mail goes to and the OTP is bound to.
    pub(crate) address: String,
    pub(crate) redirect_to: String,
    pub(crate) pkce: Option<(ChallengeMethod, String)>,
    /// Mark the token `reset_` (see [`Marks`]).
    pub(crate) reset: bool,
}

impl LinkSpec {
    /// The user column that holds the token.
    pub(crate) fn column(&self) -> TokenColumn {
        match self.kind {
            MailKind::Confirmation | MailKind::Invite => TokenColumn::Confirmation,
            MailKind::MagicLink | MailKind::Recovery => TokenColumn::Recovery,
            MailKind::EmailChange => TokenColumn::EmailChangeNew,
            MailKind::Reauthentication => TokenColumn::Reauthentication,
        }
    }

    /// The `type` the link verifies as.
    pub(crate) fn verify_type(&self) -> VerifyType {
        match self.kind {
            MailKind::Confirmation => VerifyType::Signup,
            MailKind::Invite => VerifyType::Invite,
            MailKind::MagicLink => VerifyType::Magiclink,
            MailKind::Recovery => VerifyType::Recovery,
            MailKind::EmailChange => VerifyType::EmailChange,
            MailKind::Reauthentication => VerifyType::Email,
        }
    }
}

/// An issued link.
#[derive(Debug)]
pub(crate) struct IssuedLink {
    pub(crate) otp: String,
    pub(crate) token_hash: String,
    pub(crate) action_link: String,
}

/// A PKCE challenge from a request body: both fields or neither.
pub(crate) fn pkce_params(challenge: Option<&str>, method: Option<&str>) -> Result<Option<(ChallengeMethod, String)>> {
    match (challenge.filter(|c| !c.is_empty()), method.filter(|m| !m.is_empty())) {
        (None, None) => Ok(None),
        (Some(c), Some(m)) => {
            let method = ChallengeMethod::parse(m)
                .ok_or_else(|| Error::validation(format!("code challenge method not supported: {m}")))?;
            if !(43..=128).contains(&c.len()) {
                return Err(Error::validation("code challenge has to be between 43 and 128 characters"));
            }
            Ok(Some((method, c.to_owned())))
        }
        _ => Err(Error::validation("PKCE flow requires code_challenge_method and code_challenge")),
    }
}

/// Stores a new token for `user` and returns the OTP and link (nothing is sent).
pub(crate) async fn issue(
    auth: &Auth,
    project: &Project,
    conn: &mut PgConnection,
    user: &User,
    spec: &LinkSpec,
) -> Result<IssuedLink> {
    let otp = random_otp(auth.config().otp_digits());
    let token_hash = token_hash(&spec.address, &otp);
    let marks = Marks { sms: false, pkce: spec.pkce.is_some(), reset: spec.reset };
    let stored = marks.apply(&stored_digest(&token_hash));
    if let Some((method, challenge)) = &spec.pkce {
        sqlx::query(
            "insert into auth.flow_state (id, user_id, code_challenge_method, code_challenge, provider_type, \
             authentication_method, redirect_to) values ($1, $2, $3, $4, 'email', $5, $6)",
        )
        .bind(Uuid::new_v4())
        .bind(user.id)
        .bind(method.as_str())
        .bind(challenge)
        .bind(spec.verify_type().method())
        .bind(&spec.redirect_to)
        .execute(&mut *conn)
        .await?;
    }
    auth.store().update(&mut *conn, user.id, UserChange::default().token(spec.column(), stored)).await?;
    let action_link = format!(
        "{}/verify?token={}&type={}&redirect_to={}",
        auth.issuer(project),
        token_hash,
        spec.verify_type().as_str(),
        encode(&spec.redirect_to)
    );
    Ok(IssuedLink { otp, token_hash, action_link })
}

/// Issues a token (within the mail rate limits) and renders its mail. Deliver the mail with
/// [`deliver`] or [`deliver_later`] once the transaction has committed: no locks are held
/// while a mail server is slow.
pub(crate) async fn prepare(
    auth: &Auth,
    project: &Project,
    conn: &mut PgConnection,
    user: &User,
    spec: &LinkSpec,
) -> Result<Mail> {
    auth.0.limits.mail(spec.kind, &spec.address)?;
    let link = issue(auth, project, conn, user, spec).await?;
    let site = auth.site_url(project);
    let data = TemplateData {
        confirmation_url: &link.action_link,
        token: &link.otp,
        token_hash: &link.token_hash,
        site_url: &site,
        email: user.email.as_deref().unwrap_or_default(),
        new_email: user.email_change.as_deref().unwrap_or_default(),
        redirect_to: &spec.redirect_to,
    };
    let (subject, html) = auth.config().templates.render(spec.kind, &data);
    Ok(Mail {
        kind: spec.kind,
        to: spec.address.clone(),
        subject,
        html,
        otp: link.otp,
        sent_at: OffsetDateTime::now_utc(),
    })
}

/// Stores a new code for `user` (within the send limits) and renders the text that carries
/// it to `phone` (E.164 digits). Send it with [`deliver_sms`] once the transaction has
/// committed.
pub(crate) async fn prepare_sms(
    auth: &Auth,
    conn: &mut PgConnection,
    user: &User,
    kind: SmsKind,
    phone: &str,
    channel: Channel,
    reset: bool,
) -> Result<Sms> {
    auth.0.limits.sms(kind, phone)?;
    let config = auth.config();
    let otp = random_otp(config.sms_otp_digits());
    let sms = render_sms(auth, kind, phone, channel, otp.clone());
    let column = match kind {
        SmsKind::Otp => TokenColumn::Confirmation,
        SmsKind::PhoneChange => TokenColumn::PhoneChange,
        SmsKind::Reauthentication => TokenColumn::Reauthentication,
        SmsKind::Mfa => return Err(Error::internal("MFA codes are kept on their challenge")),
    };
    let stored = Marks { sms: true, pkce: false, reset }.apply(&stored_digest(&token_hash(phone, &otp)));
    auth.store().update(conn, user.id, UserChange::default().token(column, stored)).await?;
    Ok(sms)
}

/// The text carrying `otp` to `phone`.
pub(crate) fn render_sms(auth: &Auth, kind: SmsKind, phone: &str, channel: Channel, otp: String) -> Sms {
    Sms {
        kind,
        to: format!("+{phone}"),
        channel,
        body: auth.config().sms_template.replace("{{ .Code }}", &otp),
        otp,
        sent_at: OffsetDateTime::now_utc(),
    }
}

/// Sends a prepared text and returns the provider's message id; a failure is 422
/// `sms_send_failed` (the provider's answer goes to the log only).
pub(crate) async fn deliver_sms(auth: &Auth, sms: Sms) -> Result<String> {
    let kind = sms.kind;
    auth.0.sms.send(sms).await.map_err(|e| {
        tracing::error!(error = %e, ?kind, "sending a text failed");
        Error::new(ErrorKind::SmsSendFailed, "Error sending a text message")
    })
}

/// Sends a prepared text in the background, for answers that must not depend on whether a
/// text went out (phone sign-up and resend). Failures are logged.
pub(crate) fn deliver_sms_later(auth: &Auth, sms: Sms) {
    let kind = sms.kind;
    in_background(auth.0.sms.send(sms), kind, "sending a text failed");
}

/// Runs a send on its own task, logging a failure with what was sent.
fn in_background<T, E: std::fmt::Display>(
    sending: impl std::future::Future<Output = std::result::Result<T, E>> + Send + 'static,
    kind: impl std::fmt::Debug + Send + 'static,
    failed: &'static str,
) {
    tokio::spawn(async move {
        if let Err(e) = sending.await {
            tracing::error!(error = %e, ?kind, "{failed}");
        }
    });
}

/// Sends a prepared mail; a failure is the server's (500).
pub(crate) async fn deliver(auth: &Auth, mail: Mail) -> Result<()> {
    auth.0.mailer.send(mail).await.map_err(Error::internal)
}

/// Sends a prepared mail in the background, for endpoints whose answer must not depend on
/// whether a mail went out (recover, otp, magiclink, resend): the response time then does not
/// tell known addresses from unknown ones. Failures are logged.
pub(crate) fn deliver_later(auth: &Auth, mail: Mail) {
    let kind = mail.kind;
    in_background(auth.0.mailer.send(mail), kind, "sending mail failed");
}

/// How a token is presented.
#[derive(Debug)]
pub(crate) enum Presented<'a> {
    /// An OTP typed in, with the address it was sent to.
    Otp { address: &'a str, otp: &'a str },
    /// A link's `token_hash`.
    Hash(&'a str),
}

/// A verified token.
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) user: User,
    pub(crate) verify_type: VerifyType,
    pub(crate) pkce: bool,
}

/// How a token is stored: a digest of its hash, with markers in front. `sms_`: the code went
/// by text (only phone verification finds it); `pkce_`: a PKCE flow (exchanged for an auth
/// code); `reset_`: sent by `otp`/`magiclink` to an account nobody has confirmed yet, so
/// using it drops what was set up without proof.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Marks {
    pub(crate) sms: bool,
    pub(crate) pkce: bool,
    pub(crate) reset: bool,
}

impl Marks {
    pub(crate) fn apply(self, digest: &str) -> String {
        format!(
            "{}{}{}{digest}",
            if self.sms { "sms_" } else { "" },
            if self.pkce { "pkce_" } else { "" },
            if self.reset { "reset_" } else { "" }
        )
    }

    /// The markings a token verified as `verify_type` may carry, in the order tried.
    fn candidates(verify_type: VerifyType) -> Vec<Marks> {
        let sms = verify_type.is_phone();
        let pkce: &[bool] = if sms { &[false] } else { &[false, true] };
        pkce.iter().flat_map(|&pkce| [false, true].map(|reset| Marks { sms, pkce, reset })).collect()
    }
}

/// Verifies and consumes a token, applying what it confirms. Expired or unknown: 403
/// `otp_expired`.
pub(crate) async fn verify(
    auth: &Auth,
    conn: &mut PgConnection,
    verify_type: VerifyType,
    presented: Presented<'_>,
) -> Result<Verified> {
    let hash = match presented {
        Presented::Otp { address, otp } => token_hash(address, otp.trim()),
        Presented::Hash(h) => h.trim().to_owned(),
    };
    if let Presented::Hash(_) = presented
        && verify_type.is_phone()
    {
        // Codes sent by text are typed in with their number; there is no link to follow.
        return Err(Error::otp_expired());
    }
    let digest = stored_digest(&hash);
    let config = auth.config();
    let ttl = if verify_type.is_phone() { config.sms_otp_exp } else { config.otp_exp };
    let ttl = time::Duration::seconds(i64::try_from(ttl).unwrap_or(600));
    for &column in verify_type.columns() {
        let mut found = None;
        for marks in Marks::candidates(verify_type) {
            let stored = marks.apply(&digest);
            if let Some(user) = auth.store().find(&mut *conn, Lookup::Token(column, &stored)).await? {
                found = Some((user, marks));
                break;
            }
        }
        let Some((user, marks)) = found else { continue };
        if let Presented::Otp { address, .. } = presented {
            let expected = match (column, verify_type) {
                (TokenColumn::EmailChangeNew, _) => &user.email_change,
                (TokenColumn::PhoneChange, _) => &user.phone_change,
                (_, VerifyType::Sms) => &user.phone,
                _ => &user.email,
            };
            if expected.as_deref() != Some(address) {
                continue;
            }
        }
        let (_, sent_at) = column.stored(&user);
        if sent_at.is_none_or(|t| t + ttl < OffsetDateTime::now_utc()) {
            return Err(Error::otp_expired());
        }
        auth.store().update(&mut *conn, user.id, UserChange::default().token(column, "")).await?;
        let effective = match (verify_type, column) {
            (VerifyType::Email, TokenColumn::Confirmation) => VerifyType::Signup,
            (VerifyType::Email, _) => VerifyType::Magiclink,
            (t, _) => t,
        };
        if marks.reset {
            drop_unproven(auth, conn, &user, effective).await?;
        }
        let user = apply(auth, conn, &user, effective).await?;
        return Ok(Verified { user, verify_type: effective, pkce: marks.pkce });
    }
    Err(Error::otp_expired())
}

/// A code sent by `otp`/`magiclink` to an account nobody had confirmed was just used: its
/// owner proved the address (or number), not whoever set the account up. What was set up
/// without proof goes (password, metadata, other identities, sessions), so a pre-registered
/// account cannot be taken over; the OAuth path does the same.
async fn drop_unproven(auth: &Auth, conn: &mut PgConnection, user: &User, verify_type: VerifyType) -> Result<()> {
    let unproven = match verify_type {
        VerifyType::Sms => user.phone_confirmed_at.is_none(),
        _ => !user.email_confirmed(),
    };
    if !unproven {
        return Ok(());
    }
    let keep = if verify_type == VerifyType::Sms { "phone" } else { "email" };
    let store = auth.store();
    for identity in store.identities(&mut *conn, user.id).await? {
        if identity.provider != keep {
            store.unlink(&mut *conn, user.id, Some(identity.id)).await?;
        }
    }
    let change = UserChange {
        password_hash: Some(String::new()),
        user_metadata: Some(serde_json::Map::new()),
        ..UserChange::default()
    };
    store.update(&mut *conn, user.id, change).await?;
    sqlx::query("delete from auth.sessions where user_id = $1").bind(user.id).execute(&mut *conn).await?;
    Ok(())
}

/// Applies what a verified token confirms, and returns the user as it now is.
async fn apply(auth: &Auth, conn: &mut PgConnection, user: &User, verify_type: VerifyType) -> Result<User> {
    let store = auth.store();
    match verify_type {
        VerifyType::EmailChange => {
            let new_email = user.email_change.clone().filter(|e| !e.is_empty()).ok_or_else(Error::otp_expired)?;
            crate::users::ensure_free(auth, conn, Contact::Email(&new_email), Some(user.id)).await?;
            let change = UserChange {
                email: Some(Some(new_email.clone())),
                email_change: Some(String::new()),
                email_confirmed: Some(true),
                anonymous: Some(false),
                ..UserChange::default()
            };
            store.update(&mut *conn, user.id, change).await?;
            crate::users::set_identity(auth, conn, user.id, Contact::Email(&new_email), true).await?;
        }
        VerifyType::PhoneChange => {
            let new_phone = user.phone_change.clone().filter(|p| !p.is_empty()).ok_or_else(Error::otp_expired)?;
            let change = UserChange {
                phone: Some(Some(new_phone.clone())),
                phone_change: Some(String::new()),
                phone_confirmed: Some(true),
                anonymous: Some(false),
                ..UserChange::default()
            };
            store.update(&mut *conn, user.id, change).await?;
            crate::users::set_identity(auth, conn, user.id, Contact::Phone(&new_phone), true).await?;
        }
        VerifyType::Sms => {
            let change = UserChange { phone_confirmed: Some(true), ..UserChange::default() };
            store.update(&mut *conn, user.id, change).await?;
            crate::users::mark_verified(auth, conn, user.id, "phone", "phone_verified").await?;
        }
        _ => {
            let change = UserChange { email_confirmed: Some(true), ..UserChange::default() };
            store.update(&mut *conn, user.id, change).await?;
            crate::users::mark_verified(auth, conn, user.id, "email", "email_verified").await?;
        }
    }
    store.find(conn, Lookup::Id(user.id)).await?.ok_or_else(|| Error::internal("verified user vanished"))
}

/// Issues an auth code on the user's newest open PKCE flow for `method`.
pub(crate) async fn issue_auth_code(
    conn: &mut PgConnection,
    user_id: Uuid,
    method: &str,
) -> Result<(String, Option<String>)> {
    let flow: Option<(Uuid, Option<String>)> = sqlx::query_as(
        "select id, redirect_to from auth.flow_state where user_id = $1 and authentication_method = $2 \
         and auth_code is null order by created_at desc limit 1 for update",
    )
    .bind(user_id)
    .bind(method)
    .fetch_optional(&mut *conn)
    .await?;
    let (id, redirect_to) =
        flow.ok_or_else(|| Error::new(ErrorKind::FlowStateNotFound, "invalid flow state, no valid flow state found"))?;
    let code = random_token();
    sqlx::query(
        "update auth.flow_state set auth_code = $2, auth_code_issued_at = now(), updated_at = now() where id = $1",
    )
    .bind(id)
    .bind(sha256_hex(code.as_bytes()))
    .execute(&mut *conn)
    .await?;
    Ok((code, redirect_to))
}

/// Percent-encodes a query value.
pub(crate) fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
