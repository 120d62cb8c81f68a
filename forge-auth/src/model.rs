//! Users, identities and factors as stored in `auth.*`, and their JSON shapes (GoTrue's
//! `models/user.go`, `identity.go`, `factor.go`).

use serde_json::{Map, Value, json};
use sqlx::PgExecutor;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::error::Result;

/// A row of `auth.users`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    /// The user's id (the JWT `sub`).
    pub id: Uuid,
    /// The audience (`authenticated`).
    pub aud: Option<String>,
    /// The Postgres role the user's requests run as (`authenticated`).
    pub role: Option<String>,
    /// The email, lower-cased.
    pub email: Option<String>,
    /// The phone number (E.164 digits).
    pub phone: Option<String>,
    /// The password hash (argon2id PHC string, or an imported bcrypt hash).
    pub encrypted_password: Option<String>,
    /// When the email was confirmed.
    pub email_confirmed_at: Option<OffsetDateTime>,
    /// When the phone was confirmed.
    pub phone_confirmed_at: Option<OffsetDateTime>,
    /// The earlier of the two confirmations.
    pub confirmed_at: Option<OffsetDateTime>,
    /// When the invitation was sent.
    pub invited_at: Option<OffsetDateTime>,
    /// Digest of the pending confirmation token.
    pub confirmation_token: Option<String>,
    /// When the confirmation was sent.
    pub confirmation_sent_at: Option<OffsetDateTime>,
    /// Digest of the pending recovery (or magic link) token.
    pub recovery_token: Option<String>,
    /// When the recovery mail was sent.
    pub recovery_sent_at: Option<OffsetDateTime>,
    /// Digest of the pending email-change token (sent to the new address).
    pub email_change_token_new: Option<String>,
    /// The address an email change is moving to.
    pub email_change: Option<String>,
    /// When the email-change mail was sent.
    pub email_change_sent_at: Option<OffsetDateTime>,
    /// Digest of the pending reauthentication nonce.
    pub reauthentication_token: Option<String>,
    /// When the reauthentication nonce was sent.
    pub reauthentication_sent_at: Option<OffsetDateTime>,
    /// The phone number a phone change is moving to.
    pub phone_change: Option<String>,
    /// Digest of the pending phone-change code.
    pub phone_change_token: Option<String>,
    /// When the phone-change code was sent.
    pub phone_change_sent_at: Option<OffsetDateTime>,
    /// The last sign-in.
    pub last_sign_in_at: Option<OffsetDateTime>,
    /// `app_metadata` (provider, providers, roles: only the service role writes it).
    pub raw_app_meta_data: Option<Value>,
    /// `user_metadata` (the user writes it).
    pub raw_user_meta_data: Option<Value>,
    /// Creation time.
    pub created_at: Option<OffsetDateTime>,
    /// Last update.
    pub updated_at: Option<OffsetDateTime>,
    /// Banned until this time.
    pub banned_until: Option<OffsetDateTime>,
    /// Soft-deletion time.
    pub deleted_at: Option<OffsetDateTime>,
    /// Whether the user signed in anonymously and has not linked an email or phone.
    pub is_anonymous: bool,
}

/// A row of `auth.identities`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Identity {
    /// The row id (`identity_id` on the wire).
    pub id: Uuid,
    /// The provider's subject (`id` on the wire).
    pub provider_id: String,
    /// The user.
    pub user_id: Uuid,
    /// What the provider said about the user.
    pub identity_data: Value,
    /// `email`, `phone`, `github`, ...
    pub provider: String,
    /// The last sign-in through this identity.
    pub last_sign_in_at: Option<OffsetDateTime>,
    /// Creation time.
    pub created_at: Option<OffsetDateTime>,
    /// Last update.
    pub updated_at: Option<OffsetDateTime>,
    /// The identity's email, lower-cased.
    pub email: Option<String>,
}

/// A row of `auth.mfa_factors`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Factor {
    /// The factor's id.
    pub id: Uuid,
    /// The user.
    pub user_id: Uuid,
    /// A name the user chose.
    pub friendly_name: Option<String>,
    /// `totp` (`phone` and `webauthn` are not offered).
    pub factor_type: String,
    /// `unverified` or `verified`.
    pub status: String,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last update.
    pub updated_at: OffsetDateTime,
    /// The TOTP secret (base32).
    pub secret: Option<String>,
    /// The last challenge.
    pub last_challenged_at: Option<OffsetDateTime>,
    /// The number codes go to (phone factors).
    pub phone: Option<String>,
}

pub(crate) fn ts(t: Option<OffsetDateTime>) -> Value {
    match t.and_then(|t| t.format(&Rfc3339).ok()) {
        Some(s) => Value::String(s),
        None => Value::Null,
    }
}

impl User {
    /// Whether the user is banned now.
    pub fn is_banned(&self) -> bool {
        self.banned_until.is_some_and(|t| t > OffsetDateTime::now_utc())
    }

    /// Whether the email is confirmed.
    pub fn email_confirmed(&self) -> bool {
        self.email_confirmed_at.is_some()
    }

    /// `app_metadata` as an object.
    pub fn app_metadata(&self) -> Map<String, Value> {
        match &self.raw_app_meta_data {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        }
    }

    /// `user_metadata` as an object.
    pub fn user_metadata(&self) -> Map<String, Value> {
        match &self.raw_user_meta_data {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        }
    }

    /// The role requests of this user run as.
    pub fn role(&self) -> &str {
        match self.role.as_deref() {
            Some(r) if !r.is_empty() => r,
            _ => "authenticated",
        }
    }

    /// The User JSON GoTrue sends.
    pub fn to_json(&self, identities: &[Identity], factors: &[Factor]) -> Value {
        let mut v = json!({
            "id": self.id,
            "aud": self.aud.clone().unwrap_or_else(|| "authenticated".into()),
            "role": self.role.clone().unwrap_or_default(),
            "email": self.email.clone().unwrap_or_default(),
            "phone": self.phone.clone().unwrap_or_default(),
            "app_metadata": Value::Object(self.app_metadata()),
            "user_metadata": Value::Object(self.user_metadata()),
            "identities": identities.iter().map(Identity::to_json).collect::<Vec<_>>(),
            "created_at": ts(self.created_at),
            "updated_at": ts(self.updated_at),
            "is_anonymous": self.is_anonymous,
        });
        let optional = [
            ("email_confirmed_at", self.email_confirmed_at),
            ("phone_confirmed_at", self.phone_confirmed_at),
            ("confirmed_at", self.confirmed_at),
            ("confirmation_sent_at", self.confirmation_sent_at),
            ("recovery_sent_at", self.recovery_sent_at),
            ("email_change_sent_at", self.email_change_sent_at),
            ("phone_change_sent_at", self.phone_change_sent_at),
            ("reauthentication_sent_at", self.reauthentication_sent_at),
            ("invited_at", self.invited_at),
            ("last_sign_in_at", self.last_sign_in_at),
            ("banned_until", self.banned_until),
            ("deleted_at", self.deleted_at),
        ];
        let obj = v.as_object_mut().expect("an object");
        for (name, value) in optional {
            if value.is_some() {
                obj.insert(name.into(), ts(value));
            }
        }
        if let Some(e) = self.email_change.as_deref().filter(|e| !e.is_empty()) {
            obj.insert("new_email".into(), Value::String(e.into()));
        }
        if let Some(p) = self.phone_change.as_deref().filter(|p| !p.is_empty()) {
            obj.insert("new_phone".into(), Value::String(p.into()));
        }
        if !factors.is_empty() {
            obj.insert("factors".into(), factors.iter().map(Factor::to_json).collect());
        }
        v
    }
}

/// The one-time token columns of `auth.users`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenColumn {
    /// `confirmation_token`: sign-up confirmation (email or SMS).
    Confirmation,
    /// `recovery_token`: recovery, magic links and OTP sign-in.
    Recovery,
    /// `email_change_token_new`: an email change, sent to the new address.
    EmailChangeNew,
    /// `reauthentication_token`: the nonce for a password change.
    Reauthentication,
    /// `phone_change_token`: a phone change, sent to the new number.
    PhoneChange,
}

impl TokenColumn {
    /// The column's name.
    pub fn name(self) -> &'static str {
        match self {
            TokenColumn::Confirmation => "confirmation_token",
            TokenColumn::Recovery => "recovery_token",
            TokenColumn::EmailChangeNew => "email_change_token_new",
            TokenColumn::Reauthentication => "reauthentication_token",
            TokenColumn::PhoneChange => "phone_change_token",
        }
    }

    /// `<column> = $1`, for a store's query.
    pub(crate) fn condition(self) -> &'static str {
        match self {
            TokenColumn::Confirmation => "confirmation_token = $1",
            TokenColumn::Recovery => "recovery_token = $1",
            TokenColumn::EmailChangeNew => "email_change_token_new = $1",
            TokenColumn::Reauthentication => "reauthentication_token = $1",
            TokenColumn::PhoneChange => "phone_change_token = $1",
        }
    }

    /// The digest stored in this column of `user`, and when it was sent.
    pub(crate) fn stored(self, user: &User) -> (Option<&str>, Option<OffsetDateTime>) {
        match self {
            TokenColumn::Confirmation => (user.confirmation_token.as_deref(), user.confirmation_sent_at),
            TokenColumn::Recovery => (user.recovery_token.as_deref(), user.recovery_sent_at),
            TokenColumn::EmailChangeNew => (user.email_change_token_new.as_deref(), user.email_change_sent_at),
            TokenColumn::Reauthentication => (user.reauthentication_token.as_deref(), user.reauthentication_sent_at),
            TokenColumn::PhoneChange => (user.phone_change_token.as_deref(), user.phone_change_sent_at),
        }
    }
}

impl Identity {
    /// The Identity JSON GoTrue sends.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "identity_id": self.id,
            "id": self.provider_id,
            "user_id": self.user_id,
            "identity_data": self.identity_data,
            "provider": self.provider,
            "last_sign_in_at": ts(self.last_sign_in_at),
            "created_at": ts(self.created_at),
            "updated_at": ts(self.updated_at),
        });
        if let Some(e) = &self.email {
            v["email"] = Value::String(e.clone());
        }
        v
    }
}

impl Factor {
    /// The factors of a user, oldest first.
    pub async fn of_user(db: impl PgExecutor<'_>, user_id: Uuid) -> Result<Vec<Factor>> {
        Ok(sqlx::query_as(
            "select id, user_id, friendly_name, factor_type::text as factor_type, status::text as status, created_at, \
             updated_at, secret, last_challenged_at, phone from auth.mfa_factors where user_id = $1 order by created_at, id",
        )
        .bind(user_id)
        .fetch_all(db)
        .await?)
    }

    /// The Factor JSON GoTrue sends (never the secret).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "friendly_name": self.friendly_name.clone().unwrap_or_default(),
            "factor_type": self.factor_type,
            "status": self.status,
            "created_at": ts(Some(self.created_at)),
            "updated_at": ts(Some(self.updated_at)),
            "last_challenged_at": ts(self.last_challenged_at),
        });
        if let Some(p) = &self.phone {
            v["phone"] = Value::String(p.clone());
        }
        v
    }
}

/// A user with identities and factors, rendered as GoTrue's User JSON.
pub(crate) async fn user_json(
    auth: &crate::service::Auth,
    conn: &mut sqlx::PgConnection,
    user: &User,
) -> Result<Value> {
    let identities = auth.store().identities(&mut *conn, user.id).await?;
    let factors = Factor::of_user(&mut *conn, user.id).await?;
    Ok(user.to_json(&identities, &factors))
}
