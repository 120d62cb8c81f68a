//! Settings of the auth service. The defaults suit development: sign-ups are auto-confirmed
//! and mail goes to the local outbox.

use serde::{Deserialize, Serialize};

use crate::password::PasswordPolicy;

/// How the auth service behaves. Every field has a default; see [`AuthConfig::default`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
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
    /// Let signed-in users link and unlink identities themselves (`linkIdentity` and
    /// `unlinkIdentity`: `GET /user/identities/authorize`, `DELETE /user/identities/{id}`).
    /// Off by default, as GoTrue's `GOTRUE_SECURITY_MANUAL_LINKING_ENABLED`; off, both answer
    /// 404 `manual_linking_disabled`.
    pub manual_linking_enabled: bool,
}

/// Auth hooks, as `pg-functions://postgres/<schema>/<function>` URIs (Supabase's form).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Hooks {
    /// Called before an access token is signed; may change its claims.
    pub custom_access_token: Option<String>,
}

impl Hooks {
    /// With the function called before an access token is signed (a `pg-functions://` URI).
    pub fn with_custom_access_token(mut self, uri: impl Into<String>) -> Self {
        self.custom_access_token = Some(uri.into());
        self
    }
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
            manual_linking_enabled: false,
        }
    }
}

impl AuthConfig {
    /// With where users land after following a link when no (allowed) `redirect_to` is given.
    pub fn with_site_url(mut self, url: impl Into<String>) -> Self {
        self.site_url = Some(url.into());
        self
    }

    /// With the further URLs `redirect_to` may point at (replacing any set before).
    pub fn with_redirect_urls(mut self, urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.redirect_urls = urls.into_iter().map(Into::into).collect();
        self
    }

    /// With the access-token lifetime, in seconds.
    pub fn with_jwt_exp(mut self, seconds: u64) -> Self {
        self.jwt_exp = seconds;
        self
    }

    /// With how long (seconds) a rotated refresh token may still be exchanged.
    pub fn with_refresh_token_reuse_interval(mut self, seconds: u64) -> Self {
        self.refresh_token_reuse_interval = seconds;
        self
    }

    /// With how many seconds after sign-in sessions end, whatever their use (0: never).
    pub fn with_session_timebox(mut self, seconds: u64) -> Self {
        self.session_timebox = seconds;
        self
    }

    /// With how many seconds a session may go without a refresh before it ends (0: forever).
    pub fn with_session_inactivity_timeout(mut self, seconds: u64) -> Self {
        self.session_inactivity_timeout = seconds;
        self
    }

    /// With all new sign-ups refused, or not.
    pub fn with_disable_signup(mut self, disable: bool) -> Self {
        self.disable_signup = disable;
        self
    }

    /// With sign-ups and email changes confirmed without an email, or not.
    pub fn with_mailer_autoconfirm(mut self, autoconfirm: bool) -> Self {
        self.mailer_autoconfirm = autoconfirm;
        self
    }

    /// With anonymous sign-ins allowed, or not.
    pub fn with_anonymous_enabled(mut self, enabled: bool) -> Self {
        self.anonymous_enabled = enabled;
        self
    }

    /// With email sign-up and sign-in allowed, or not.
    pub fn with_email_enabled(mut self, enabled: bool) -> Self {
        self.email_enabled = enabled;
        self
    }

    /// With phone sign-up and sign-in allowed, or not.
    pub fn with_phone_enabled(mut self, enabled: bool) -> Self {
        self.phone_enabled = enabled;
        self
    }

    /// With phone sign-ups and phone changes confirmed without a code, or not.
    pub fn with_sms_autoconfirm(mut self, autoconfirm: bool) -> Self {
        self.sms_autoconfirm = autoconfirm;
        self
    }

    /// With how long (seconds) SMS codes stay valid.
    pub fn with_sms_otp_exp(mut self, seconds: u64) -> Self {
        self.sms_otp_exp = seconds;
        self
    }

    /// With the digits in an SMS code (6 to 10).
    pub fn with_sms_otp_length(mut self, digits: usize) -> Self {
        self.sms_otp_length = digits;
        self
    }

    /// With the text of an SMS (`{{ .Code }}` is replaced by the code).
    pub fn with_sms_template(mut self, template: impl Into<String>) -> Self {
        self.sms_template = template.into();
        self
    }

    /// With texts sent through Twilio.
    pub fn with_twilio(mut self, settings: crate::sms::TwilioSettings) -> Self {
        self.twilio = Some(settings);
        self
    }

    /// With the fewest characters a password may have.
    pub fn with_password_min_length(mut self, length: usize) -> Self {
        self.password_min_length = length;
        self
    }

    /// With passwords from the common-password list refused, or not.
    pub fn with_password_reject_common(mut self, reject: bool) -> Self {
        self.password_reject_common = reject;
        self
    }

    /// With the current password (or a reauthentication nonce) required to change it, or not.
    pub fn with_secure_password_change(mut self, secure: bool) -> Self {
        self.secure_password_change = secure;
        self
    }

    /// With how long (seconds) email OTPs and links stay valid.
    pub fn with_otp_exp(mut self, seconds: u64) -> Self {
        self.otp_exp = seconds;
        self
    }

    /// With the digits in an email OTP (6 to 10).
    pub fn with_otp_length(mut self, digits: usize) -> Self {
        self.otp_length = digits;
        self
    }

    /// With the least time (seconds) between two mails of one kind to one address.
    pub fn with_max_frequency(mut self, seconds: u64) -> Self {
        self.max_frequency = seconds;
        self
    }

    /// With these request-rate limits.
    pub fn with_rate_limits(mut self, limits: RateLimits) -> Self {
        self.rate_limits = limits;
        self
    }

    /// With the header that carries the client's address (e.g. `X-Forwarded-For`).
    pub fn with_rate_limit_header(mut self, header: impl Into<String>) -> Self {
        self.rate_limit_header = Some(header.into());
        self
    }

    /// With the MFA issuer shown in authenticator apps.
    pub fn with_mfa_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.mfa_issuer = Some(issuer.into());
        self
    }

    /// With the most MFA factors a user may enroll.
    pub fn with_mfa_max_factors(mut self, factors: usize) -> Self {
        self.mfa_max_factors = factors;
        self
    }

    /// With phone MFA factors allowed, or not.
    pub fn with_mfa_phone_enabled(mut self, enabled: bool) -> Self {
        self.mfa_phone_enabled = enabled;
        self
    }

    /// With these mail templates.
    pub fn with_templates(mut self, templates: Templates) -> Self {
        self.templates = templates;
        self
    }

    /// With the external provider `name` (replacing one of that name), as in `external`.
    pub fn with_provider(mut self, name: impl Into<String>, provider: crate::provider::ProviderConfig) -> Self {
        self.external.insert(name.into(), provider);
        self
    }

    /// With JWTs of this external issuer accepted as `authenticated`.
    pub fn with_third_party(mut self, issuer: crate::third_party::ThirdPartyConfig) -> Self {
        self.third_party = Some(issuer);
        self
    }

    /// With these auth hooks.
    pub fn with_hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = hooks;
        self
    }

    /// With a captcha token required on the sign-up, sign-in and sending endpoints.
    pub fn with_captcha(mut self, settings: crate::captcha::CaptchaSettings) -> Self {
        self.captcha = Some(settings);
        self
    }

    /// With manual identity linking (`linkIdentity`, `unlinkIdentity`) allowed, or not.
    pub fn with_manual_linking_enabled(mut self, enabled: bool) -> Self {
        self.manual_linking_enabled = enabled;
        self
    }

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
#[non_exhaustive]
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

impl RateLimits {
    /// With the `POST /token` requests (all grants) allowed per 5 minutes.
    pub fn with_token_per_5min(mut self, n: u32) -> Self {
        self.token_per_5min = n;
        self
    }

    /// With the `/verify` requests allowed per 5 minutes.
    pub fn with_verify_per_5min(mut self, n: u32) -> Self {
        self.verify_per_5min = n;
        self
    }

    /// With the requests allowed per 5 minutes to each sending endpoint (`/signup`, `/otp`, `/recover`, ...).
    pub fn with_otp_per_5min(mut self, n: u32) -> Self {
        self.otp_per_5min = n;
        self
    }

    /// With the anonymous sign-ins allowed per hour.
    pub fn with_anonymous_per_hour(mut self, n: u32) -> Self {
        self.anonymous_per_hour = n;
        self
    }

    /// With the MFA challenges and verifications allowed per minute.
    pub fn with_mfa_per_minute(mut self, n: u32) -> Self {
        self.mfa_per_minute = n;
        self
    }

    /// With the mails allowed per hour, over all addresses.
    pub fn with_email_sent_per_hour(mut self, n: u32) -> Self {
        self.email_sent_per_hour = n;
        self
    }

    /// With the texts allowed per hour, over all numbers.
    pub fn with_sms_sent_per_hour(mut self, n: u32) -> Self {
        self.sms_sent_per_hour = n;
        self
    }
}

/// A mail template: a subject and an HTML body with GoTrue's placeholders
/// (`{{ .ConfirmationURL }}`, `{{ .Token }}`, `{{ .TokenHash }}`, `{{ .SiteURL }}`,
/// `{{ .Email }}`, `{{ .NewEmail }}`, `{{ .RedirectTo }}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Template {
    /// The subject line.
    pub subject: String,
    /// The HTML body.
    pub body: String,
}

impl Template {
    /// A template with this subject line and HTML body.
    pub fn new(subject: impl Into<String>, body: impl Into<String>) -> Self {
        Self { subject: subject.into(), body: body.into() }
    }
}

/// Overrides for the built-in mail templates.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
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

impl Templates {
    /// With the sign-up confirmation template.
    pub fn with_confirmation(mut self, template: Template) -> Self {
        self.confirmation = Some(template);
        self
    }

    /// With the magic link and email OTP template.
    pub fn with_magic_link(mut self, template: Template) -> Self {
        self.magic_link = Some(template);
        self
    }

    /// With the password recovery template.
    pub fn with_recovery(mut self, template: Template) -> Self {
        self.recovery = Some(template);
        self
    }

    /// With the email change template.
    pub fn with_email_change(mut self, template: Template) -> Self {
        self.email_change = Some(template);
        self
    }

    /// With the invitation template.
    pub fn with_invite(mut self, template: Template) -> Self {
        self.invite = Some(template);
        self
    }

    /// With the reauthentication nonce template.
    pub fn with_reauthentication(mut self, template: Template) -> Self {
        self.reauthentication = Some(template);
        self
    }
}
