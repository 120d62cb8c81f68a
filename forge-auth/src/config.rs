//! Settings of the auth service. The defaults suit development: sign-ups are auto-confirmed
//! and mail goes to the local outbox.

use serde::{Deserialize, Serialize};

use crate::password::PasswordPolicy;

/// How the auth service behaves. Every field has a default; see [`AuthConfig::default`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Where users land after following a link when no (allowed) `redirect_to` is given.
    /// Unset: the project's public URL.
    pub site_url: Option<String>,
    /// Further URLs `redirect_to` may point at. An entry ending in `*` allows any URL that
    /// starts with the rest. The site URL (and anything under it) is always allowed.
    pub redirect_urls: Vec<String>,
    /// Access-token lifetime in seconds (GoTrue's `JWT_EXP`).
    pub jwt_exp: u64,
    /// How long (seconds) a rotated refresh token may still be exchanged, e.g. by a second tab.
    pub refresh_token_reuse_interval: u64,
    /// Sessions end this many seconds after sign-in, whatever their use (0: never).
    pub session_timebox: u64,
    /// Sessions end after this many seconds without a refresh (0: never).
    pub session_inactivity_timeout: u64,
    /// Refuse all new sign-ups.
    pub disable_signup: bool,
    /// Sign-ups and email changes are confirmed without an email (the development default).
    pub mailer_autoconfirm: bool,
    /// Allow `signInAnonymously`.
    pub anonymous_enabled: bool,
    /// Allow email sign-up and sign-in.
    pub email_enabled: bool,
    /// Allow phone sign-up and sign-in (codes by SMS; see `twilio`).
    pub phone_enabled: bool,
    /// Phone sign-ups and phone changes are confirmed without a code.
    pub sms_autoconfirm: bool,
    /// How long (seconds) SMS codes stay valid.
    pub sms_otp_exp: u64,
    /// Digits in an SMS code (6 to 10).
    pub sms_otp_length: usize,
    /// The text of an SMS; `{{ .Code }}` is replaced by the code.
    pub sms_template: String,
    /// Send texts through Twilio. Unset: texts are kept in the local SMS outbox.
    pub twilio: Option<crate::sms::TwilioSettings>,
    /// The fewest characters a password may have.
    pub password_min_length: usize,
    /// Refuse passwords from the common-password list.
    pub password_reject_common: bool,
    /// Require the current password (or a reauthentication nonce) to change the password.
    pub secure_password_change: bool,
    /// How long (seconds) email OTPs and links stay valid.
    pub otp_exp: u64,
    /// Digits in an email OTP (6 to 10).
    pub otp_length: usize,
    /// The least time (seconds) between two mails of one kind to one address.
    pub max_frequency: u64,
    /// Request-rate limits.
    pub rate_limits: RateLimits,
    /// The header that carries the client's address, when behind a proxy (e.g.
    /// `X-Forwarded-For`; its first value is used). Unset: the peer address.
    pub rate_limit_header: Option<String>,
    /// The MFA issuer shown in authenticator apps. Unset: the site's host.
    pub mfa_issuer: Option<String>,
    /// The most MFA factors a user may enroll.
    pub mfa_max_factors: usize,
    /// Allow phone MFA factors (codes by text).
    pub mfa_phone_enabled: bool,
    /// Mail templates; any left unset use the built-in ones.
    pub templates: Templates,
    /// External providers by name (`github`, `google`, or any name with `kind = "oidc"`).
    pub external: std::collections::BTreeMap<String, crate::provider::ProviderConfig>,
    /// An external issuer whose JWTs are accepted as `authenticated` (third-party auth).
    pub third_party: Option<crate::third_party::ThirdPartyConfig>,
    /// Auth hooks.
    pub hooks: Hooks,
    /// Require a captcha token on sign-up, sign-in and the mail/text-sending endpoints.
    pub captcha: Option<crate::captcha::CaptchaSettings>,
}

/// Auth hooks, as `pg-functions://postgres/<schema>/<function>` URIs (Supabase's form).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hooks {
    /// Called before an access token is signed; may change its claims.
    pub custom_access_token: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            site_url: None,
            redirect_urls: Vec::new(),
            jwt_exp: 3600,
            refresh_token_reuse_interval: 10,
            session_timebox: 0,
            session_inactivity_timeout: 0,
            disable_signup: false,
            mailer_autoconfirm: true,
            anonymous_enabled: true,
            email_enabled: true,
            phone_enabled: false,
            sms_autoconfirm: false,
            sms_otp_exp: 60,
            sms_otp_length: 6,
            sms_template: "Your code is {{ .Code }}".into(),
            twilio: None,
            password_min_length: 8,
            password_reject_common: false,
            secure_password_change: false,
            otp_exp: 600,
            otp_length: 6,
            max_frequency: 60,
            rate_limits: RateLimits::default(),
            rate_limit_header: None,
            mfa_issuer: None,
            mfa_max_factors: 10,
            mfa_phone_enabled: false,
            templates: Templates::default(),
            external: std::collections::BTreeMap::new(),
            third_party: None,
            hooks: Hooks::default(),
            captcha: None,
        }
    }
}

impl AuthConfig {
    pub(crate) fn password_policy(&self) -> PasswordPolicy {
        PasswordPolicy { min_length: self.password_min_length, reject_common: self.password_reject_common }
    }

    pub(crate) fn otp_digits(&self) -> usize {
        if (6..=10).contains(&self.otp_length) { self.otp_length } else { 6 }
    }

    pub(crate) fn sms_otp_digits(&self) -> usize {
        if (6..=10).contains(&self.sms_otp_length) { self.sms_otp_length } else { 6 }
    }

    /// Checks values that would make the service misbehave.
    pub fn validate(&self) -> Result<(), BuildError> {
        let invalid = |setting: &str, reason: &str| {
            Err(BuildError::Invalid { setting: format!("auth.{setting}"), reason: reason.to_owned() })
        };
        if self.jwt_exp < 120 {
            return invalid("jwt_exp", "must be at least 120 seconds (clients refresh 90 s before expiry)");
        }
        if self.password_min_length < 6 {
            return invalid("password_min_length", "must be at least 6");
        }
        if self.otp_exp == 0 || self.sms_otp_exp == 0 {
            return invalid("otp_exp", "auth.otp_exp and auth.sms_otp_exp must be positive");
        }
        if !self.sms_template.contains("{{ .Code }}") {
            return invalid("sms_template", "must contain {{ .Code }}");
        }
        if let Some(t) = &self.third_party
            && !(t.issuer.starts_with("https://") || t.issuer.starts_with("http://"))
        {
            return invalid("third_party.issuer", "must be an http(s) URL");
        }
        if let Some(uri) = &self.hooks.custom_access_token
            && let Err(e) = crate::hooks::PgFunction::parse(uri)
        {
            return invalid("hooks.custom_access_token", &e);
        }
        for (name, provider) in &self.external {
            if let Err(e) = provider.build(name) {
                return invalid(&format!("external.{name}"), &e.to_string());
            }
        }
        Ok(())
    }
}

/// Why an [`AuthBuilder`](crate::AuthBuilder) could not build, or an [`AuthConfig`] is
/// not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting has a value the service cannot run with.
    #[error("{setting} {reason}")]
    Invalid {
        /// The setting, as named in `forge.toml` (`auth.jwt_exp`).
        setting: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Requests allowed per client address, as token buckets: `N` per window, with a burst of N.
/// 0 refuses every request of that kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// `POST /token` (all grants) per 5 minutes.
    pub token_per_5min: u32,
    /// `/verify` per 5 minutes.
    pub verify_per_5min: u32,
    /// Each of `/signup`, `/otp`, `/magiclink`, `/recover`, `/resend`, `PUT /user` per 5 minutes.
    pub otp_per_5min: u32,
    /// Anonymous sign-ins per hour.
    pub anonymous_per_hour: u32,
    /// MFA challenges and verifications per minute.
    pub mfa_per_minute: u32,
    /// Mails sent per hour, over all addresses.
    pub email_sent_per_hour: u32,
    /// Texts sent per hour, over all numbers.
    pub sms_sent_per_hour: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            token_per_5min: 150,
            verify_per_5min: 30,
            otp_per_5min: 30,
            anonymous_per_hour: 30,
            mfa_per_minute: 15,
            email_sent_per_hour: 30,
            sms_sent_per_hour: 30,
        }
    }
}

/// A mail template: a subject and an HTML body with GoTrue's placeholders
/// (`{{ .ConfirmationURL }}`, `{{ .Token }}`, `{{ .TokenHash }}`, `{{ .SiteURL }}`,
/// `{{ .Email }}`, `{{ .NewEmail }}`, `{{ .RedirectTo }}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// The subject line.
    pub subject: String,
    /// The HTML body.
    pub body: String,
}

/// Overrides for the built-in mail templates.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Templates {
    /// Sign-up confirmation.
    pub confirmation: Option<Template>,
    /// Magic link and email OTP.
    pub magic_link: Option<Template>,
    /// Password recovery.
    pub recovery: Option<Template>,
    /// Email change (sent to the new address).
    pub email_change: Option<Template>,
    /// Invitation.
    pub invite: Option<Template>,
    /// Reauthentication nonce.
    pub reauthentication: Option<Template>,
}
