//! Run with `DATABASE_URL=postgres://... JWT_SECRET=<32+ bytes> DISCORD_CLIENT_ID=... \
//! DISCORD_CLIENT_SECRET=... cargo run -p example-custom-idp`.
//!
//! A provider Forge does not ship (Discord), written against forge-auth's
//! [`IdentityProvider`] trait and mounted with the rest of the auth API in a plain axum app.
//! Sign in by sending a browser to
//! `http://127.0.0.1:3000/auth/v1/authorize?provider=discord&redirect_to=http://127.0.0.1:3000/`.
//! supabase-js does the same with `supabase.auth.signInWithOAuth({ provider: 'discord' })`.

use axum::Router;
use forge_auth::provider::{AuthorizeParams, ProviderError, ProviderFuture};
use forge_auth::{Auth, AuthConfig, IdentityProvider, ProviderUser};
use forge_core::{Database, DatabaseConfig, Project, ProjectKeys, ProjectLayer, ProjectRef, ProjectSettings};
use serde_json::{Map, Value, json};

/// Discord's OAuth 2 (no OpenID Connect): the user comes from `/users/@me`.
#[derive(Debug)]
struct Discord {
    client_id: String,
    secret: String,
    base: String,
    http: reqwest::Client,
}

impl Discord {
    fn new(client_id: String, secret: String, base: &str) -> Self {
        Self { client_id, secret, base: base.trim_end_matches('/').to_owned(), http: reqwest::Client::new() }
    }
}

/// The S256 PKCE challenge of a verifier: unpadded base64url of its SHA-256.
fn s256(verifier: &str) -> String {
    use base64::Engine as _;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

impl IdentityProvider for Discord {
    fn name(&self) -> &str {
        "discord"
    }

    fn authorize_url<'a>(&'a self, p: &'a AuthorizeParams<'a>) -> ProviderFuture<'a, String> {
        let mut scopes = vec!["identify".to_owned(), "email".to_owned()];
        scopes.extend(p.scopes.iter().cloned());
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", p.redirect_uri)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", p.state)
            .append_pair("code_challenge", &s256(p.pkce_verifier))
            .append_pair("code_challenge_method", "S256")
            .finish();
        let url = format!("{}/oauth2/authorize?{query}", self.base);
        Box::pin(async move { Ok(url) })
    }

    fn exchange<'a>(
        &'a self,
        code: &'a str,
        pkce_verifier: &'a str,
        redirect_uri: &'a str,
        _nonce: &'a str,
    ) -> ProviderFuture<'a, ProviderUser> {
        Box::pin(async move {
            let form = [
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", pkce_verifier),
            ];
            let tokens: Value = self
                .http
                .post(format!("{}/api/oauth2/token", self.base))
                .basic_auth(&self.client_id, Some(&self.secret))
                .form(&form)
                .send()
                .await
                .map_err(ProviderError::request)?
                .error_for_status()
                .map_err(|e| ProviderError::Refused(e.to_string()))?
                .json()
                .await
                .map_err(ProviderError::request)?;
            let access =
                tokens["access_token"].as_str().ok_or_else(|| ProviderError::Invalid("no access token".into()))?;
            let me: Value = self
                .http
                .get(format!("{}/api/users/@me", self.base))
                .bearer_auth(access)
                .send()
                .await
                .map_err(ProviderError::request)?
                .json()
                .await
                .map_err(ProviderError::request)?;
            user_from_profile(&me, access, tokens["refresh_token"].as_str())
        })
    }
}

/// Maps Discord's profile to what Forge stores as the identity.
fn user_from_profile(me: &Value, access: &str, refresh: Option<&str>) -> Result<ProviderUser, ProviderError> {
    let subject = me["id"].as_str().ok_or_else(|| ProviderError::Invalid("profile without id".into()))?.to_owned();
    let email = me["email"].as_str().map(str::to_lowercase);
    let mut data = Map::new();
    data.insert("sub".into(), json!(subject));
    data.insert("provider_id".into(), json!(subject));
    data.insert("full_name".into(), me["global_name"].clone());
    data.insert("user_name".into(), me["username"].clone());
    if let Some(e) = &email {
        data.insert("email".into(), json!(e));
    }
    Ok(ProviderUser {
        subject,
        email_verified: me["verified"] == true && email.is_some(),
        email,
        data,
        access_token: Some(access.to_owned()),
        refresh_token: refresh.map(str::to_owned),
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str| std::env::var(name).map_err(|_| format!("set {name}"));
    let url = env("DATABASE_URL")?;
    let secret = env("JWT_SECRET")?;
    let reference = ProjectRef::new("demo")?;
    let keys = ProjectKeys::builder(reference.clone(), secret.into_bytes()).build()?;
    let db = Database::connect_lazy(&DatabaseConfig::new(url))?;
    forge_core::bootstrap::apply(db.pool()).await?;
    forge_core::migrate::run(db.pool(), &[forge_auth::MIGRATIONS]).await?;
    println!("anon key: {}", keys.anon_key());
    let project = Project::new(reference, db, keys, ProjectSettings::new("http://127.0.0.1:3000"));

    let discord = Discord::new(env("DISCORD_CLIENT_ID")?, env("DISCORD_CLIENT_SECRET")?, "https://discord.com");
    let auth = Auth::builder().config(AuthConfig::default()).provider(discord).build()?;
    let app = Router::new().nest("/auth/v1", auth.router()).layer(ProjectLayer::single(project));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_authorize_url_carries_state_pkce_and_scopes() {
        let d = Discord::new("id".into(), "secret".into(), "https://discord.example");
        let scopes = ["guilds".to_owned()];
        let p = AuthorizeParams {
            state: "s1",
            redirect_uri: "http://h/cb",
            pkce_verifier: "v",
            nonce: "n",
            scopes: &scopes,
        };
        let url = d.authorize_url(&p).await.expect("url");
        assert!(url.starts_with("https://discord.example/oauth2/authorize?response_type=code&client_id=id"), "{url}");
        assert!(url.contains("scope=identify+email+guilds") && url.contains("state=s1"), "{url}");
        // RFC 7636 appendix B.
        assert_eq!(s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn profiles_map_to_identities() {
        let me = json!({ "id": "42", "username": "pat", "global_name": "Pat", "email": "Pat@Example.com", "verified": true });
        let u = user_from_profile(&me, "at", None).expect("user");
        assert_eq!((u.subject.as_str(), u.email.as_deref(), u.email_verified), ("42", Some("pat@example.com"), true));
        let unverified =
            user_from_profile(&json!({ "id": "1", "email": "a@b.c", "verified": false }), "at", None).expect("user");
        assert!(!unverified.email_verified, "an unverified email never links to an existing account");
    }
}
