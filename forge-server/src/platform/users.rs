//! Platform users: the first owner (made through the one-time setup link the server prints,
//! or by `forge-server tokens create`), personal access tokens, and who a Management API
//! request comes from.
//!
//! A personal access token is `sbp_` and 40 hex characters (Supabase's shape); only its
//! SHA-256 is stored, and it is shown once.

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use forge_auth::NewUser;
use secrecy::{ExposeSecret as _, SecretString};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::platform::error::{Error, ErrorKind, Result};
use crate::platform::keys::hash;
use crate::platform::store::{AccessTokenRow, Actor, Role};
use crate::platform::{DEFAULT_ORGANIZATION, Platform};

/// A personal access token's prefix.
pub const TOKEN_PREFIX: &str = "sbp_";

fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    SystemRandom::new().fill(&mut raw).expect("the system random source");
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// Who is calling the Management API.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The platform user.
    pub user_id: Uuid,
    /// Their email (for the audit log).
    pub email: String,
}

impl Caller {
    /// The caller as the audit log names them.
    pub fn actor(&self) -> Actor {
        Actor { user_id: Some(self.user_id), name: self.email.clone() }
    }
}

impl Platform {
    /// A fresh setup link's token, when the platform has no owner yet (`None` once it has).
    /// Each start makes a new one; the previous stops working.
    pub async fn setup_token(&self) -> Result<Option<SecretString>> {
        if self.0.store.has_owner().await? {
            return Ok(None);
        }
        let token = SecretString::from(random_hex(24));
        self.0.store.set_setup_token(&hash(token.expose_secret())).await?;
        *self.0.setup_token.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        Ok(Some(token))
    }

    /// Whether the platform has its first owner.
    pub async fn has_owner(&self) -> Result<bool> {
        self.0.store.has_owner().await
    }

    /// Makes the first owner through the setup link: a platform user with this email and
    /// password, owner of the default organization.
    pub async fn finish_setup(&self, token: &str, email: &str, password: &str) -> Result<Uuid> {
        if self.0.store.has_owner().await? {
            return Err(Error::new(ErrorKind::SetupDone, "The platform has its owner already"));
        }
        if !self.0.store.setup_token_matches(&hash(token)).await? {
            return Err(Error::new(
                ErrorKind::Unauthorized,
                "The setup link is not valid (it works once, from the server's latest start)",
            ));
        }
        if password.chars().count() < 8 {
            return Err(Error::invalid("The password must have at least 8 characters"));
        }
        let hashed = forge_auth::password::hash(password).map_err(Error::internal)?;
        self.make_owner(email, Some(hashed)).await
    }

    /// The platform user with `email`, made when missing (the first user of a server with no
    /// owner becomes its owner). For `forge-server tokens create`.
    pub async fn user_for_email(&self, email: &str) -> Result<Uuid> {
        if let Some(id) = self.0.store.user_by_email(email).await? {
            return Ok(id);
        }
        if !self.0.store.has_owner().await? {
            return self.make_owner(email, None).await;
        }
        let mut conn = self.0.store.pool().acquire().await?;
        self.create_user(&mut conn, email, None).await
    }

    async fn create_user(
        &self,
        conn: &mut sqlx::PgConnection,
        email: &str,
        password_hash: Option<String>,
    ) -> Result<Uuid> {
        let email = email.trim().to_lowercase();
        if !email.contains('@') || email.len() > 320 || email.starts_with('@') || email.ends_with('@') {
            return Err(Error::invalid("A valid email address is required"));
        }
        let store = forge_auth::PgUserStore;
        let new = NewUser { email: Some(email), password_hash, email_confirmed: true, ..NewUser::default() };
        let user = forge_auth::UserStore::create(&store, conn, new).await.map_err(|e| match e.status().as_u16() {
            422 => Error::conflict("A user with this email exists"),
            _ => Error::internal(e.to_string()),
        })?;
        Ok(user.id)
    }

    async fn make_owner(&self, email: &str, password_hash: Option<String>) -> Result<Uuid> {
        let store = &self.0.store;
        let mut tx = store.pool().begin().await?;
        if !store.finish_setup(&mut *tx).await? {
            return Err(Error::new(ErrorKind::SetupDone, "The platform has its owner already"));
        }
        let user = self.create_user(&mut tx, email, password_hash).await?;
        let org = store
            .organization(DEFAULT_ORGANIZATION)
            .await?
            .ok_or_else(|| Error::internal("no default organization"))?;
        store.put_member(&mut *tx, org.id, user, Role::Owner).await?;
        let actor = Actor { user_id: Some(user), name: email.trim().to_lowercase() };
        store.audit(&mut *tx, &actor, "platform.setup", Some(org.id), None, serde_json::json!({})).await?;
        tx.commit().await?;
        *self.0.setup_token.lock().unwrap_or_else(|e| e.into_inner()) = None;
        tracing::info!("the platform's first owner was created");
        Ok(user)
    }

    /// A new personal access token for `user`: the row and the token (shown once).
    pub async fn create_access_token(
        &self,
        user: Uuid,
        name: &str,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<(AccessTokenRow, SecretString)> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 128 {
            return Err(Error::invalid("A token's name must have 1 to 128 characters"));
        }
        if expires_at.is_some_and(|e| e <= OffsetDateTime::now_utc()) {
            return Err(Error::invalid("expires_at must be in the future"));
        }
        let token = SecretString::from(format!("{TOKEN_PREFIX}{}", random_hex(20)));
        let prefix: String = token.expose_secret().chars().take(TOKEN_PREFIX.len() + 6).collect();
        let row =
            self.0.store.insert_access_token(user, name, &prefix, &hash(token.expose_secret()), expires_at).await?;
        Ok((row, token))
    }

    /// Who a bearer token stands for: a personal access token, or a platform session JWT.
    pub async fn caller(&self, token: &str) -> Result<Caller> {
        let refused = || Error::new(ErrorKind::Unauthorized, "A valid access token or platform session is required");
        let user_id = if token.starts_with(TOKEN_PREFIX) {
            self.0.store.access_token_user(&hash(token)).await?.ok_or_else(refused)?
        } else {
            let claims = self.0.project.keys().verify_own_jwt(token).map_err(|_| refused())?;
            if claims.role() != Some("authenticated") {
                return Err(refused());
            }
            let sub = claims.get("sub").and_then(|s| s.as_str()).ok_or_else(refused)?;
            Uuid::parse_str(sub).map_err(|_| refused())?
        };
        let email = self.0.store.user_email(user_id).await?.ok_or_else(refused)?;
        Ok(Caller { user_id, email })
    }
}

impl Platform {
    /// Mails an invitation through the auth service's mailer (logged, never fatal: the token
    /// is also answered to the administrator who invited).
    pub async fn mail_invitation(&self, org: &crate::platform::store::Organization, email: &str, token: &str) {
        let Some(auth) = &self.0.auth else {
            return;
        };
        let url = self.0.registry.config().public_url.trim_end_matches('/').to_owned();
        let html = format!(
            "<h2>You are invited to {name}</h2><p>Sign in to the platform at {url}/p/platform with this address, \
             then accept the invitation with this token:</p><p><code>{token}</code></p>",
            name = html_escape(&org.name),
        );
        let mail = forge_auth::Mail {
            kind: forge_auth::MailKind::Invite,
            to: email.to_owned(),
            subject: format!("You are invited to {}", org.name),
            html,
            otp: String::new(),
            sent_at: OffsetDateTime::now_utc(),
        };
        if let Err(e) = auth.mailer().send(mail).await {
            tracing::warn!(error = %e, "mailing an invitation failed");
        }
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
