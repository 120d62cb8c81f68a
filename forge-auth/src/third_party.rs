//! Third-party JWTs: tokens from your own OIDC identity provider accepted as `authenticated`
//! everywhere (REST, storage, realtime), for teams that keep their IdP.
//!
//! forge-core verifies the tokens ([`forge_core::ThirdPartyIssuer`]); this module keeps the
//! issuer's public keys current by fetching its JWKS (found by OIDC discovery unless a URL is
//! given) at start and then periodically.

use std::sync::Arc;
use std::time::Duration;

use forge_core::ThirdPartyIssuer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::provider::ProviderError;

/// `[auth.third_party]`: the external issuer to trust.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ThirdPartyConfig {
    /// The issuer; tokens must carry it in `iss`.
    pub issuer: String,
    /// Where its keys are; unset: from `<issuer>/.well-known/openid-configuration`.
    pub jwks_url: Option<String>,
    /// The audience tokens must name, if any.
    pub audience: Option<String>,
}

impl ThirdPartyConfig {
    /// Trust tokens whose `iss` is `issuer`.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self { issuer: issuer.into(), ..Self::default() }
    }

    /// With the issuer's keys fetched from this URL instead of found by discovery.
    pub fn with_jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// With the audience tokens must name.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }
}

/// How often the keys are fetched again (rotations show up within this).
pub const REFRESH_EVERY: Duration = Duration::from_secs(300);

/// Fetches the issuer's current keys into `issuer`; returns how many it has.
pub async fn refresh(config: &ThirdPartyConfig, issuer: &ThirdPartyIssuer) -> Result<usize, ProviderError> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(ProviderError::request)?;
    let get = |url: String| {
        let http = http.clone();
        async move {
            let res = http.get(&url).send().await.map_err(ProviderError::request)?;
            if !res.status().is_success() {
                return Err(ProviderError::Refused(format!("{url} answered {}", res.status())));
            }
            res.json::<Value>().await.map_err(ProviderError::request)
        }
    };
    let url = match &config.jwks_url {
        Some(u) => u.clone(),
        None => {
            let doc = get(format!("{}/.well-known/openid-configuration", config.issuer.trim_end_matches('/'))).await?;
            doc["jwks_uri"]
                .as_str()
                .ok_or_else(|| ProviderError::Invalid("discovery document without jwks_uri".into()))?
                .to_owned()
        }
    };
    let jwks = get(url).await?;
    issuer.set_jwks(&jwks).map_err(|e| ProviderError::Invalid(e.to_string()))
}

/// Creates the issuer, fetches its keys once (a failure is logged and retried), and keeps
/// them current in the background for as long as the issuer is in use.
pub async fn start(config: ThirdPartyConfig) -> Arc<ThirdPartyIssuer> {
    let issuer = ThirdPartyIssuer::new(config.issuer.clone(), config.audience.clone());
    match refresh(&config, &issuer).await {
        Ok(n) => tracing::info!(issuer = %config.issuer, keys = n, "third-party JWT issuer trusted"),
        Err(e) => {
            tracing::error!(issuer = %config.issuer, error = %e, "could not fetch the third-party issuer's keys; retrying")
        }
    }
    let weak = Arc::downgrade(&issuer);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(REFRESH_EVERY).await;
            let Some(issuer) = weak.upgrade() else { return };
            if let Err(e) = refresh(&config, &issuer).await {
                tracing::warn!(issuer = %config.issuer, error = %e, "third-party JWKS refresh failed; keeping the previous keys");
            }
        }
    });
    issuer
}
