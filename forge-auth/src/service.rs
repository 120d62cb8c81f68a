//! [`Auth`]: the embeddable auth service.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use forge_core::Project;

use crate::captcha::Captcha;
use crate::config::{AuthConfig, BuildError};
use crate::limit::Limiters;
use crate::mail::{Mailer, Outbox};
use crate::provider::IdentityProvider;
use crate::sms::{SmsOutbox, SmsSender, Twilio};
use crate::store::{PgUserStore, UserStore};

/// Builds an [`Auth`].
#[derive(Debug, Default)]
pub struct AuthBuilder {
    config: AuthConfig,
    mailer: Option<Arc<dyn Mailer>>,
    providers: Vec<Arc<dyn IdentityProvider>>,
    store: Option<Arc<dyn UserStore>>,
    sms: Option<Arc<dyn SmsSender>>,
}

impl AuthBuilder {
    /// Uses `config` (see [`AuthConfig`] for the defaults).
    pub fn config(mut self, config: AuthConfig) -> Self {
        self.config = config;
        self
    }

    /// Sends mail through `mailer` instead of the local [`Outbox`].
    pub fn mailer(mut self, mailer: impl Mailer) -> Self {
        self.mailer = Some(Arc::new(mailer));
        self
    }

    /// Sends texts through `sender` instead of [`AuthConfig::twilio`] or the local
    /// [`SmsOutbox`].
    pub fn sms_sender(mut self, sender: impl SmsSender) -> Self {
        self.sms = Some(Arc::new(sender));
        self
    }

    /// Keeps users in `store` instead of [`PgUserStore`].
    pub fn user_store(mut self, store: impl UserStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Adds an external identity provider (besides those in [`AuthConfig::external`]); it
    /// replaces a configured one of the same name.
    pub fn provider(mut self, provider: impl IdentityProvider) -> Self {
        self.providers.push(Arc::new(provider));
        self
    }

    /// Builds the service, or says which setting is not valid (see [`AuthConfig::validate`]).
    pub fn build(self) -> Result<Auth, BuildError> {
        self.config.validate()?;
        let mut providers = HashMap::new();
        for (name, config) in &self.config.external {
            let provider = config
                .build(name)
                .map_err(|e| BuildError::Invalid { setting: format!("auth.external.{name}"), reason: e.to_string() })?;
            providers.insert(name.clone(), provider);
        }
        for p in self.providers {
            providers.insert(p.name().to_owned(), p);
        }
        let limits = Limiters::new(&self.config.rate_limits, Duration::from_secs(self.config.max_frequency));
        let (mailer, outbox): (Arc<dyn Mailer>, Option<Outbox>) = match self.mailer {
            Some(m) => (m, None),
            None => {
                let outbox = Outbox::new();
                (Arc::new(outbox.clone()), Some(outbox))
            }
        };
        let (sms, sms_outbox): (Arc<dyn SmsSender>, Option<SmsOutbox>) = match (self.sms, &self.config.twilio) {
            (Some(s), _) => (s, None),
            (None, Some(twilio)) => (Arc::new(Twilio::new(twilio.clone())), None),
            (None, None) => {
                let outbox = SmsOutbox::new();
                (Arc::new(outbox.clone()), Some(outbox))
            }
        };
        let store = self.store.unwrap_or_else(|| Arc::new(PgUserStore));
        let captcha = self.config.captcha.clone().map(Captcha::new);
        Ok(Auth(Arc::new(Inner {
            config: self.config,
            mailer,
            outbox,
            sms,
            sms_outbox,
            limits,
            providers,
            store,
            captcha,
        })))
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: AuthConfig,
    pub(crate) mailer: Arc<dyn Mailer>,
    pub(crate) outbox: Option<Outbox>,
    pub(crate) sms: Arc<dyn SmsSender>,
    pub(crate) sms_outbox: Option<SmsOutbox>,
    pub(crate) limits: Limiters,
    pub(crate) providers: HashMap<String, Arc<dyn IdentityProvider>>,
    pub(crate) store: Arc<dyn UserStore>,
    pub(crate) captcha: Option<Captcha>,
}

/// The GoTrue-compatible auth service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Auth(pub(crate) Arc<Inner>);

impl Auth {
    /// Starts a builder.
    pub fn builder() -> AuthBuilder {
        AuthBuilder::default()
    }

    /// The settings.
    pub fn config(&self) -> &AuthConfig {
        &self.0.config
    }

    /// Checks the request's captcha token, when captcha protection is on.
    pub(crate) async fn check_captcha(&self, body: &[u8], ip: Option<std::net::IpAddr>) -> crate::Result<()> {
        match &self.0.captcha {
            Some(c) => c.check(body, ip).await,
            None => Ok(()),
        }
    }

    /// Where users are kept.
    pub fn store(&self) -> &dyn UserStore {
        &*self.0.store
    }

    /// The mailer auth mail goes through (the local outbox when none was configured), for an
    /// embedding server's own mail (a platform's invitations).
    pub fn mailer(&self) -> &dyn Mailer {
        &*self.0.mailer
    }

    /// The local outbox, when no mailer was configured.
    pub fn outbox(&self) -> Option<&Outbox> {
        self.0.outbox.as_ref()
    }

    /// The local SMS outbox, when no SMS provider was configured.
    pub fn sms_outbox(&self) -> Option<&SmsOutbox> {
        self.0.sms_outbox.as_ref()
    }

    /// The routes, to nest at `/auth/v1` under a [`forge_core::ProjectLayer`], in an
    /// application's router of any state.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        crate::api::router(self.clone())
    }

    /// The site URL of `project`: the configured one, else the project's public URL.
    pub(crate) fn site_url(&self, project: &Project) -> String {
        self.0.config.site_url.clone().unwrap_or_else(|| project.settings().public_url.clone())
    }

    /// The auth service's own external URL (`<public url>/auth/v1`), the JWT issuer.
    pub(crate) fn issuer(&self, project: &Project) -> String {
        format!("{}/auth/v1", project.settings().public_url.trim_end_matches('/'))
    }

    /// `redirect_to` when it is allowed, else the site URL.
    pub(crate) fn redirect_target(&self, project: &Project, requested: Option<&str>) -> String {
        let site = self.site_url(project);
        match requested.map(str::trim).filter(|r| !r.is_empty()) {
            Some(r) if self.redirect_allowed(&site, r) => r.to_owned(),
            _ => site,
        }
    }

    fn redirect_allowed(&self, site: &str, url: &str) -> bool {
        let under = |base: &str| {
            let base = base.trim_end_matches('/');
            url == base || url.strip_prefix(base).is_some_and(|rest| rest.starts_with(['/', '?', '#']))
        };
        under(site)
            || self.0.config.redirect_urls.iter().any(|allowed| {
                if allowed.contains(['*', '?']) {
                    glob_match(allowed.as_bytes(), url.as_bytes())
                } else {
                    under(allowed)
                }
            })
    }
}

/// GoTrue's redirect globs: `**` matches anything, `*` and `?` match within one host label
/// or path segment (never across `.` or `/`), everything else literally; the whole URL must
/// match.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let separator = |c: u8| c == b'.' || c == b'/';
    match pattern {
        [] => text.is_empty(),
        [b'*', b'*', rest @ ..] => (0..=text.len()).any(|i| glob_match(rest, &text[i..])),
        [b'*', rest @ ..] => {
            let span = text.iter().position(|&c| separator(c)).unwrap_or(text.len());
            (0..=span).any(|i| glob_match(rest, &text[i..]))
        }
        [b'?', rest @ ..] => matches!(text, [c, tail @ ..] if !separator(*c) && glob_match(rest, tail)),
        [p, rest @ ..] => matches!(text, [c, tail @ ..] if c == p && glob_match(rest, tail)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_outside_the_allow_list_fall_back_to_the_site() {
        let auth = Auth::builder()
            .config(AuthConfig::default().with_site_url("https://app.example.com").with_redirect_urls([
                "http://localhost:3000",
                "https://preview-*.example.net/**",
                "http://localhost:4000/**",
            ]))
            .build()
            .expect("a valid config");
        let site = "https://app.example.com";
        assert!(auth.redirect_allowed(site, "https://app.example.com/welcome"));
        assert!(auth.redirect_allowed(site, "http://localhost:3000/cb?x=1"));
        assert!(auth.redirect_allowed(site, "https://preview-42.example.net/"));
        assert!(auth.redirect_allowed(site, "https://preview-42.example.net/a/b?c=d"));
        assert!(!auth.redirect_allowed(site, "https://preview-x.attacker.net/"), "* stays within a label");
        assert!(!auth.redirect_allowed(site, "https://preview-a.b.example.net/"), "* never crosses a dot");
        assert!(auth.redirect_allowed(site, "http://localhost:4000/welcome/x"));
        assert!(!auth.redirect_allowed(site, "http://localhost:4000.evil.net/"));
        assert!(!auth.redirect_allowed(site, "https://app.example.com.evil.net/"));
        assert!(!auth.redirect_allowed(site, "https://evil.net/?https://app.example.com"));
        assert!(!auth.redirect_allowed(site, "http://localhost:30000/"));
    }
}
