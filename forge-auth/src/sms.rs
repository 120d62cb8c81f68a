//! Outgoing text messages: the [`SmsSender`] trait, Twilio's Messages API ([`Twilio`]), and
//! the development default ([`SmsOutbox`]) that keeps messages in memory.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// What a text is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsKind {
    /// A code that confirms the number: sign-up and OTP sign-in.
    Otp,
    /// A code sent to the new number of a phone change.
    PhoneChange,
    /// A reauthentication nonce.
    Reauthentication,
    /// A code answering an MFA challenge of a phone factor.
    Mfa,
}

/// How the message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A plain SMS.
    #[default]
    Sms,
    /// A WhatsApp message.
    Whatsapp,
}

/// One rendered text.
#[derive(Debug, Clone, Serialize)]
pub struct Sms {
    /// What it is for.
    pub kind: SmsKind,
    /// The recipient, E.164 with the leading `+`.
    pub to: String,
    /// The channel asked for.
    pub channel: Channel,
    /// The text.
    pub body: String,
    /// The code the text carries (for tooling).
    #[serde(skip)]
    pub otp: String,
    /// When it was handed to the sender.
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: OffsetDateTime,
}

/// Why a text could not be sent, by meaning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SmsError {
    /// The provider could not be reached, or its answer could not be read.
    #[error("the SMS provider could not be reached: {0}")]
    Transport(#[source] forge_core::error::BoxError),
    /// The provider refused the message.
    #[error("the SMS provider refused the message (HTTP {status}): {message}")]
    Refused {
        /// The provider's HTTP status.
        status: u16,
        /// The provider's words and error code.
        message: String,
    },
}

/// The future [`SmsSender::send`] returns: the provider's message id.
pub type SmsFuture = Pin<Box<dyn Future<Output = Result<String, SmsError>> + Send + 'static>>;

/// Sends text messages. Implement it for another provider.
pub trait SmsSender: Send + Sync + std::fmt::Debug + 'static {
    /// The provider's name, as `GET /settings` reports it.
    fn name(&self) -> &str;

    /// Sends one message and returns the provider's message id.
    fn send(&self, sms: Sms) -> SmsFuture;
}

/// The development sender: keeps the newest texts in memory and logs that one was sent (the
/// recipient only; the body holds the code).
#[derive(Debug, Clone, Default)]
pub struct SmsOutbox(Arc<Mutex<VecDeque<Sms>>>);

const OUTBOX_CAPACITY: usize = 1000;

impl SmsOutbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// The kept texts, oldest first, optionally only those to `to` (with or without `+`).
    pub fn messages(&self, to: Option<&str>) -> Vec<Sms> {
        let to = to.map(|t| t.trim_start_matches('+'));
        let guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        guard.iter().filter(|m| to.is_none_or(|t| m.to.trim_start_matches('+') == t)).cloned().collect()
    }

    /// The newest text to `to`.
    pub fn last_to(&self, to: &str) -> Option<Sms> {
        self.messages(Some(to)).pop()
    }
}

impl SmsSender for SmsOutbox {
    fn name(&self) -> &str {
        "outbox"
    }

    fn send(&self, sms: Sms) -> SmsFuture {
        tracing::info!(to = %sms.to, kind = ?sms.kind, "text kept in the local outbox (no SMS provider configured)");
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if guard.len() == OUTBOX_CAPACITY {
            guard.pop_front();
        }
        guard.push_back(sms);
        let id = uuid::Uuid::new_v4().simple().to_string();
        Box::pin(async move { Ok(format!("outbox-{id}")) })
    }
}

/// Twilio settings (GoTrue's `SMS_TWILIO_*`). Neither `Debug` nor `Serialize` shows the token.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TwilioSettings {
    /// The account SID (`AC...`).
    pub account_sid: String,
    /// The auth token.
    #[serde(skip_serializing)]
    pub auth_token: String,
    /// A Messaging Service SID (`MG...`) or the sender's number.
    pub message_service_sid: String,
    /// The API's base URL (default `https://api.twilio.com`).
    #[serde(default)]
    pub api_base: Option<String>,
}

impl TwilioSettings {
    /// Settings for the account `account_sid` with its `auth_token`, sending from
    /// `message_service_sid` (a Messaging Service SID or the sender's number).
    pub fn new(
        account_sid: impl Into<String>,
        auth_token: impl Into<String>,
        message_service_sid: impl Into<String>,
    ) -> Self {
        Self {
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            message_service_sid: message_service_sid.into(),
            api_base: None,
        }
    }

    /// With this API base URL instead of `https://api.twilio.com`.
    pub fn with_api_base(mut self, url: impl Into<String>) -> Self {
        self.api_base = Some(url.into());
        self
    }
}

impl std::fmt::Debug for TwilioSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioSettings")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .field("message_service_sid", &self.message_service_sid)
            .field("api_base", &self.api_base)
            .finish()
    }
}

/// Sends texts through Twilio's Messages API.
#[derive(Debug, Clone)]
pub struct Twilio {
    settings: TwilioSettings,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct TwilioReply {
    sid: Option<String>,
    status: Option<String>,
    error_code: Option<serde_json::Value>,
    message: Option<String>,
    code: Option<serde_json::Value>,
}

impl Twilio {
    /// A sender for `settings`.
    pub fn new(settings: TwilioSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("forge-auth/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { settings, http }
    }
}

impl SmsSender for Twilio {
    fn name(&self) -> &str {
        "twilio"
    }

    fn send(&self, sms: Sms) -> SmsFuture {
        let s = &self.settings;
        let base = s.api_base.as_deref().unwrap_or("https://api.twilio.com").trim_end_matches('/');
        let url = format!("{base}/2010-04-01/Accounts/{}/Messages.json", s.account_sid);
        let (to, sender) = match sms.channel {
            Channel::Sms => (sms.to.clone(), s.message_service_sid.clone()),
            Channel::Whatsapp => (format!("whatsapp:{}", sms.to), format!("whatsapp:{}", s.message_service_sid)),
        };
        let sender_field = if sms.channel == Channel::Sms && s.message_service_sid.starts_with("MG") {
            "MessagingServiceSid"
        } else {
            "From"
        };
        let form = [("To", to), (sender_field, sender), ("Body", sms.body)];
        let request = self.http.post(url).basic_auth(&s.account_sid, Some(&s.auth_token)).form(&form);
        Box::pin(async move {
            let response = request.send().await.map_err(|e| SmsError::Transport(e.into()))?;
            let status = response.status();
            let reply: TwilioReply = response.json().await.map_err(|e| SmsError::Transport(e.into()))?;
            let failed = matches!(reply.status.as_deref(), Some("failed" | "undelivered"))
                || reply.error_code.as_ref().is_some_and(|c| !c.is_null());
            match reply.sid {
                Some(sid) if status.is_success() && !failed => Ok(sid),
                _ => Err(SmsError::Refused {
                    status: status.as_u16(),
                    message: format!(
                        "{} ({})",
                        reply.message.unwrap_or_default(),
                        reply.code.or(reply.error_code).unwrap_or_default()
                    ),
                }),
            }
        })
    }
}
