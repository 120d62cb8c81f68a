//! Outgoing mail: the [`Mailer`] trait, SMTP through lettre ([`SmtpMailer`]), and the
//! development default ([`Outbox`]) that keeps messages in memory and logs that they were sent.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Serialize;
use time::OffsetDateTime;

use crate::config::{Template, Templates};

/// What a mail is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    /// Sign-up confirmation.
    Confirmation,
    /// Magic link / email OTP.
    MagicLink,
    /// Password recovery.
    Recovery,
    /// Email change, to the new address.
    EmailChange,
    /// Invitation.
    Invite,
    /// Reauthentication nonce.
    Reauthentication,
}

/// One rendered message.
#[derive(Debug, Clone, Serialize)]
pub struct Mail {
    /// What it is for.
    pub kind: MailKind,
    /// The recipient.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The HTML body.
    pub html: String,
    /// The OTP the message carries (for tooling; not sent as a separate part).
    #[serde(skip)]
    pub otp: String,
    /// When it was handed to the mailer.
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: OffsetDateTime,
}

/// Why a mail could not be sent, by meaning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// An address (the sender's or the recipient's) does not parse.
    #[error("invalid address {address:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The mail settings cannot be used (an SMTP host or TLS setting).
    #[error("invalid mail settings: {0}")]
    Settings(#[source] forge_core::error::BoxError),
    /// The message could not be built.
    #[error("the message could not be built: {0}")]
    Message(#[source] forge_core::error::BoxError),
    /// The transport (an SMTP server, an API) refused the message or could not be reached.
    #[error("sending mail failed: {0}")]
    Transport(#[source] forge_core::error::BoxError),
}

/// A boxed future returned by [`Mailer::send`]. It owns what it needs, so a send can finish
/// in the background.
pub type SendFuture = Pin<Box<dyn Future<Output = Result<(), MailError>> + Send + 'static>>;

/// Sends mail. Implement it to deliver through an API instead of SMTP.
pub trait Mailer: Send + Sync + std::fmt::Debug + 'static {
    /// Sends one message.
    fn send(&self, mail: Mail) -> SendFuture;
}

/// The development mailer: keeps the newest messages in memory and logs each send (recipient
/// and subject only; the body holds secrets).
#[derive(Debug, Clone, Default)]
pub struct Outbox(Arc<Mutex<VecDeque<Mail>>>);

const OUTBOX_CAPACITY: usize = 1000;

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// The kept messages, oldest first, optionally only those to `to`.
    pub fn messages(&self, to: Option<&str>) -> Vec<Mail> {
        let guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        guard.iter().filter(|m| to.is_none_or(|t| m.to.eq_ignore_ascii_case(t))).cloned().collect()
    }

    /// The newest message to `to`.
    pub fn last_to(&self, to: &str) -> Option<Mail> {
        self.messages(Some(to)).pop()
    }
}

impl Mailer for Outbox {
    /// Keeps the message at once (before the future is polled).
    fn send(&self, mail: Mail) -> SendFuture {
        tracing::info!(to = %mail.to, subject = %mail.subject, kind = ?mail.kind, "mail kept in the local outbox (no SMTP configured)");
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if guard.len() == OUTBOX_CAPACITY {
            guard.pop_front();
        }
        guard.push_back(mail);
        Box::pin(async { Ok(()) })
    }
}

/// SMTP settings: [`SmtpSettings::new`] (port 587, STARTTLS, no authentication) and setters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SmtpSettings {
    /// The server's host name.
    pub host: String,
    /// The port (465 implies TLS, anything else STARTTLS when `tls` is set).
    pub port: u16,
    /// User name, if the server wants authentication.
    pub user: Option<String>,
    /// Password, if the server wants authentication.
    pub password: Option<secrecy::SecretString>,
    /// The sender, e.g. `Forge <noreply@example.com>`.
    pub from: String,
    /// Use TLS (implicit on port 465, else STARTTLS). Off only for local test servers.
    pub tls: bool,
}

impl SmtpSettings {
    /// Mail from `from` (e.g. `Forge <noreply@example.com>`) through `host`, port 587 with
    /// STARTTLS, without authentication.
    pub fn new(host: impl Into<String>, from: impl Into<String>) -> Self {
        Self { host: host.into(), port: 587, user: None, password: None, from: from.into(), tls: true }
    }

    /// With another port (465 implies TLS).
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// With a user name and password for the server.
    pub fn with_credentials(mut self, user: impl Into<String>, password: secrecy::SecretString) -> Self {
        self.user = Some(user.into());
        self.password = Some(password);
        self
    }

    /// With TLS on or off (off only for local test servers).
    pub fn with_tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }
}

/// Delivers mail over SMTP.
#[derive(Debug, Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// Connects lazily to the server in `settings`.
    pub fn new(settings: &SmtpSettings) -> Result<Self, MailError> {
        let from: Mailbox = settings.from.parse().map_err(|e: lettre::address::AddressError| {
            MailError::InvalidAddress { address: settings.from.clone(), reason: e.to_string() }
        })?;
        let mut builder = if !settings.tls {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
        } else if settings.port == 465 {
            AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host).map_err(|e| MailError::Settings(e.into()))?
        } else {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)
                .map_err(|e| MailError::Settings(e.into()))?
        };
        builder = builder.port(settings.port);
        if let (Some(user), Some(password)) = (&settings.user, &settings.password) {
            use secrecy::ExposeSecret as _;
            builder = builder.credentials(Credentials::new(user.clone(), password.expose_secret().to_owned()));
        }
        Ok(Self { transport: builder.build(), from })
    }
}

impl Mailer for SmtpMailer {
    fn send(&self, mail: Mail) -> SendFuture {
        let (transport, from) = (self.transport.clone(), self.from.clone());
        Box::pin(async move {
            let to: Mailbox = mail.to.parse().map_err(|e: lettre::address::AddressError| {
                MailError::InvalidAddress { address: mail.to.clone(), reason: e.to_string() }
            })?;
            let message = lettre::Message::builder()
                .from(from)
                .to(to)
                .subject(mail.subject)
                .multipart(MultiPart::alternative_plain_html(html_to_text(&mail.html), mail.html))
                .map_err(|e| MailError::Message(e.into()))?;
            transport.send(message).await.map_err(|e| MailError::Transport(e.into()))?;
            Ok(())
        })
    }
}

/// A plain-text alternative: the HTML with its tags removed.
fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// The values a template may use.
#[derive(Debug, Default)]
pub(crate) struct TemplateData<'a> {
    pub(crate) confirmation_url: &'a str,
    pub(crate) token: &'a str,
    pub(crate) token_hash: &'a str,
    pub(crate) site_url: &'a str,
    pub(crate) email: &'a str,
    pub(crate) new_email: &'a str,
    pub(crate) redirect_to: &'a str,
}

fn default_template(kind: MailKind) -> Template {
    let (subject, body) = match kind {
        MailKind::Confirmation => (
            "Confirm Your Signup",
            "<h2>Confirm your signup</h2><p>Follow this link to confirm your user:</p><p><a href=\"{{ .ConfirmationURL }}\">Confirm your mail</a></p><p>Or enter this code: {{ .Token }}</p>",
        ),
        MailKind::MagicLink => (
            "Your Magic Link",
            "<h2>Magic Link</h2><p>Follow this link to login:</p><p><a href=\"{{ .ConfirmationURL }}\">Log In</a></p><p>Or enter this code: {{ .Token }}</p>",
        ),
        MailKind::Recovery => (
            "Reset Your Password",
            "<h2>Reset Password</h2><p>Follow this link to reset the password for your user:</p><p><a href=\"{{ .ConfirmationURL }}\">Reset Password</a></p><p>Or enter this code: {{ .Token }}</p>",
        ),
        MailKind::EmailChange => (
            "Confirm Email Change",
            "<h2>Confirm Change of Email</h2><p>Follow this link to confirm the update of your email from {{ .Email }} to {{ .NewEmail }}:</p><p><a href=\"{{ .ConfirmationURL }}\">Change Email</a></p><p>Or enter this code: {{ .Token }}</p>",
        ),
        MailKind::Invite => (
            "You have been invited",
            "<h2>You have been invited</h2><p>You have been invited to create a user on {{ .SiteURL }}. Follow this link to accept the invite:</p><p><a href=\"{{ .ConfirmationURL }}\">Accept the invite</a></p><p>Or enter this code: {{ .Token }}</p>",
        ),
        MailKind::Reauthentication => {
            ("Confirm reauthentication", "<h2>Confirm reauthentication</h2><p>Enter the code: {{ .Token }}</p>")
        }
    };
    Template::new(subject, body)
}

impl Templates {
    fn get(&self, kind: MailKind) -> Option<&Template> {
        match kind {
            MailKind::Confirmation => self.confirmation.as_ref(),
            MailKind::MagicLink => self.magic_link.as_ref(),
            MailKind::Recovery => self.recovery.as_ref(),
            MailKind::EmailChange => self.email_change.as_ref(),
            MailKind::Invite => self.invite.as_ref(),
            MailKind::Reauthentication => self.reauthentication.as_ref(),
        }
    }

    /// Renders the template for `kind` (the override, else the built-in one).
    pub(crate) fn render(&self, kind: MailKind, data: &TemplateData<'_>) -> (String, String) {
        let template = self.get(kind).cloned().unwrap_or_else(|| default_template(kind));
        (substitute(&template.subject, data, false), substitute(&template.body, data, true))
    }
}

/// Replaces GoTrue's placeholders (with or without spaces inside the braces). Values are
/// HTML-escaped in bodies.
fn substitute(template: &str, data: &TemplateData<'_>, html: bool) -> String {
    let mut out = String::with_capacity(template.len() + 128);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = after[..end].trim();
        let value = match name {
            ".ConfirmationURL" => Some(data.confirmation_url),
            ".Token" => Some(data.token),
            ".TokenHash" => Some(data.token_hash),
            ".SiteURL" => Some(data.site_url),
            ".Email" => Some(data.email),
            ".NewEmail" => Some(data.new_email),
            ".RedirectTo" => Some(data.redirect_to),
            _ => None,
        };
        match value {
            Some(v) if html => out.push_str(&escape_html(v)),
            Some(v) => out.push_str(v),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_substitute_gotrues_placeholders_and_escape_html() {
        let data = TemplateData {
            confirmation_url: "http://h/auth/v1/verify?token=abc&type=signup",
            token: "123456",
            email: "a@b.c",
            ..TemplateData::default()
        };
        let (subject, body) = Templates::default().render(MailKind::Confirmation, &data);
        assert_eq!(subject, "Confirm Your Signup");
        assert!(body.contains("href=\"http://h/auth/v1/verify?token=abc&amp;type=signup\""), "{body}");
        assert!(body.contains("123456"));
        let custom =
            Templates::default().with_magic_link(Template::new("Hi {{.Email}}", "{{ .Token }} {{ .Unknown }}"));
        let (subject, body) = custom.render(MailKind::MagicLink, &data);
        assert_eq!(subject, "Hi a@b.c");
        assert_eq!(body, "123456 {{ .Unknown }}");
    }

    #[test]
    fn the_outbox_keeps_messages_per_recipient() {
        let outbox = Outbox::new();
        for to in ["a@b.c", "x@y.z", "A@B.C"] {
            let mail = Mail {
                kind: MailKind::MagicLink,
                to: to.into(),
                subject: "s".into(),
                html: to.into(),
                otp: "1".into(),
                sent_at: OffsetDateTime::now_utc(),
            };
            futures_executor(outbox.send(mail));
        }
        assert_eq!(outbox.messages(Some("a@b.c")).len(), 2);
        assert_eq!(outbox.last_to("a@b.c").expect("mail").html, "A@B.C");
        assert_eq!(outbox.messages(None).len(), 3);
    }

    fn futures_executor(f: SendFuture) {
        tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(f).expect("sent");
    }
}
