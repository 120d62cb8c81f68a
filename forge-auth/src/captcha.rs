//! Captcha protection (GoTrue's `SECURITY_CAPTCHA_*`): with `[auth.captcha]` set, sign-up,
//! password and ID-token sign-in, OTP, magic link, recovery and resend need a
//! `gotrue_meta_security.captcha_token` (supabase-js: `options.captchaToken`), checked with
//! hCaptcha or Cloudflare Turnstile before anything else is done.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};

/// Which service checks the tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptchaProvider {
    /// hCaptcha.
    Hcaptcha,
    /// Cloudflare Turnstile.
    Turnstile,
}

/// Captcha settings. Neither `Debug` nor `Serialize` shows the secret.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CaptchaSettings {
    /// The service.
    pub provider: CaptchaProvider,
    /// The site's secret key.
    #[serde(skip_serializing)]
    pub secret: String,
    /// The verification endpoint (default: the provider's `siteverify`).
    #[serde(default)]
    pub verify_url: Option<String>,
}

impl CaptchaSettings {
    /// Tokens checked with `provider`, using the site's `secret` key.
    pub fn new(provider: CaptchaProvider, secret: impl Into<String>) -> Self {
        Self { provider, secret: secret.into(), verify_url: None }
    }

    /// With this verification endpoint instead of the provider's `siteverify`.
    pub fn with_verify_url(mut self, url: impl Into<String>) -> Self {
        self.verify_url = Some(url.into());
        self
    }
}

impl std::fmt::Debug for CaptchaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptchaSettings")
            .field("provider", &self.provider)
            .field("secret", &"<redacted>")
            .field("verify_url", &self.verify_url)
            .finish()
    }
}

/// Checks captcha tokens.
#[derive(Debug, Clone)]
pub(crate) struct Captcha {
    settings: CaptchaSettings,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Verdict {
    success: bool,
    #[serde(default, rename = "error-codes")]
    error_codes: Vec<String>,
}

fn refused(reason: &str) -> Error {
    Error::new(ErrorKind::CaptchaFailed, format!("captcha protection: request disallowed ({reason})"))
}

impl Captcha {
    pub(crate) fn new(settings: CaptchaSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self { settings, http }
    }

    /// Checks the token in a request body (JSON) with the provider.
    pub(crate) async fn check(&self, body: &[u8], ip: Option<IpAddr>) -> Result<()> {
        let token = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.pointer("/gotrue_meta_security/captcha_token").and_then(Value::as_str).map(str::to_owned))
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| refused("no captcha response (captcha_token) found in request"))?;
        let url = self.settings.verify_url.clone().unwrap_or_else(|| {
            match self.settings.provider {
                CaptchaProvider::Hcaptcha => "https://hcaptcha.com/siteverify",
                CaptchaProvider::Turnstile => "https://challenges.cloudflare.com/turnstile/v0/siteverify",
            }
            .to_owned()
        });
        let mut form = vec![("secret", self.settings.secret.clone()), ("response", token)];
        if let Some(ip) = ip {
            form.push(("remoteip", ip.to_string()));
        }
        let verdict: Verdict = async {
            let response = self.http.post(url).form(&form).send().await?.error_for_status()?;
            response.json().await
        }
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "captcha verification failed");
            Error::internal("captcha verification process failed")
        })?;
        if verdict.success { Ok(()) } else { Err(refused(&verdict.error_codes.join(", "))) }
    }
}
