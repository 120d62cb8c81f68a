//! [`UserStore`]: where users and their identities live, and [`PgUserStore`], the default,
//! which keeps them in `auth.users` and `auth.identities`.
//!
//! Every method gets the connection of the request's transaction. What a store writes
//! therefore commits or rolls back together with the session, token or factor change that
//! follows it, and a store may keep more of its own (a profile table, an audit trail, a
//! mirror in a directory) with the same guarantee. Sessions, refresh tokens, MFA factors and
//! RLS policies refer to users by id through `auth.users`, so a store that keeps users
//! somewhere else still has to keep a row there for each of them: the usual way to write
//! one is to wrap [`PgUserStore`] (see the `custom_store` test).

use forge_core::ForgeError;
use forge_core::error::DbErrorKind;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value, json};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{Error, ErrorKind, Result};
use crate::model::{Identity, TokenColumn, User};

/// The future a [`UserStore`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// How to find a user.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Lookup<'a> {
    /// By id.
    Id(Uuid),
    /// By id, locking the user for the rest of the transaction.
    Locked(Uuid),
    /// By (lower-cased) email.
    Email(&'a str),
    /// By phone (E.164 digits).
    Phone(&'a str),
    /// By the address an email change is moving to.
    PendingEmail(&'a str),
    /// By the number a phone change is moving to.
    PendingPhone(&'a str),
    /// By the digest in a one-time token column, locking the user.
    Token(TokenColumn, &'a str),
}

/// An identity to link: a provider's account.
#[derive(Debug, Clone)]
pub struct NewIdentity {
    /// `email`, `phone`, `github`, ...
    pub provider: String,
    /// The provider's subject (the user's id for `email` and `phone`).
    pub provider_id: String,
    /// What the provider said about the user.
    pub data: Value,
}

/// A user to create.
#[derive(Debug, Default, Clone)]
pub struct NewUser {
    /// The id (a new one when unset).
    pub id: Option<Uuid>,
    /// The email, lower-cased.
    pub email: Option<String>,
    /// The phone number (E.164 digits).
    pub phone: Option<String>,
    /// The password hash.
    pub password_hash: Option<String>,
    /// `user_metadata`.
    pub user_metadata: Map<String, Value>,
    /// `app_metadata` (`provider` and `providers` are filled in).
    pub app_metadata: Map<String, Value>,
    /// Whether the email is confirmed.
    pub email_confirmed: bool,
    /// Whether the phone is confirmed.
    pub phone_confirmed: bool,
    /// An anonymous user (no identity).
    pub anonymous: bool,
    /// Invited by an admin.
    pub invited: bool,
    /// The role (default `authenticated`).
    pub role: Option<String>,
    /// Banned until.
    pub banned_until: Option<OffsetDateTime>,
    /// An external identity instead of the `email` (or `phone`) one.
    pub identity: Option<NewIdentity>,
}

/// Changes to a user: `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct UserChange {
    /// The email (`Some(None)` removes it).
    pub email: Option<Option<String>>,
    /// The phone (`Some(None)` removes it).
    pub phone: Option<Option<String>>,
    /// The password hash (empty: no password).
    pub password_hash: Option<String>,
    /// Confirms the email (now, unless it was confirmed and stays the same) or withdraws the
    /// confirmation.
    pub email_confirmed: Option<bool>,
    /// Confirms the phone (now, unless it was confirmed and stays the same) or withdraws the
    /// confirmation.
    pub phone_confirmed: Option<bool>,
    /// Replaces `user_metadata`.
    pub user_metadata: Option<Map<String, Value>>,
    /// Replaces `app_metadata`.
    pub app_metadata: Option<Map<String, Value>>,
    /// The role.
    pub role: Option<String>,
    /// The ban (`Some(None)` lifts it).
    pub banned_until: Option<Option<OffsetDateTime>>,
    /// Whether the user is anonymous.
    pub anonymous: Option<bool>,
    /// The address a pending email change moves to (empty: none pending).
    pub email_change: Option<String>,
    /// The number a pending phone change moves to (empty: none pending).
    pub phone_change: Option<String>,
    /// One-time token digests to store (empty clears one; a non-empty one records the time it
    /// was sent).
    pub tokens: Vec<(TokenColumn, String)>,
    /// Records an invitation now.
    pub invited: bool,
    /// Records a sign-in now.
    pub signed_in: bool,
}

impl UserChange {
    /// Stores `digest` in a token column (empty clears it).
    pub fn token(mut self, column: TokenColumn, digest: impl Into<String>) -> Self {
        self.tokens.push((column, digest.into()));
        self
    }

    fn token_for(&self, column: TokenColumn) -> Option<&str> {
        self.tokens.iter().rev().find(|(c, _)| *c == column).map(|(_, d)| d.as_str())
    }
}

/// How a user goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// The row and everything that refers to it.
    Hard,
    /// The row stays with `deleted_at` set; credentials, identities and personal data go.
    Soft,
}

/// A page of the admin user list.
#[derive(Debug, Clone)]
pub struct UserQuery {
    /// Matches part of the email or of `user_metadata.full_name`.
    pub filter: Option<String>,
    /// The page, from 1.
    pub page: u64,
    /// Users per page.
    pub per_page: u64,
    /// Newest first.
    pub newest_first: bool,
}

/// One page of users and the total that match.
#[derive(Debug, Clone)]
pub struct UserPage {
    /// The users on the page.
    pub users: Vec<User>,
    /// How many users match in all.
    pub total: u64,
}

/// Where users and their identities live. See the module docs for the contract.
///
/// Errors that users should see are rows of the catalogue ([`Error::new`] with an
/// [`ErrorKind`], e.g. 422 `email_exists`) or a refusal under the store's own
/// code ([`Error::store_refused`], 422); anything else becomes a generic 500.
pub trait UserStore: Send + Sync + Debug + 'static {
    /// Finds a user (soft-deleted ones too, by id).
    fn find<'a>(&'a self, conn: &'a mut PgConnection, by: Lookup<'a>) -> StoreFuture<'a, Option<User>>;

    /// Creates a user and, unless anonymous, their first identity. A taken email or phone is
    /// 422 `email_exists` / `phone_exists`.
    fn create<'a>(&'a self, conn: &'a mut PgConnection, new: NewUser) -> StoreFuture<'a, User>;

    /// Changes a user and returns the result. A taken email or phone is 422 `email_exists` /
    /// `phone_exists`; an unknown user is 404 `user_not_found`.
    fn update<'a>(&'a self, conn: &'a mut PgConnection, id: Uuid, change: UserChange) -> StoreFuture<'a, User>;

    /// Deletes a user.
    fn delete<'a>(&'a self, conn: &'a mut PgConnection, id: Uuid, how: Deletion) -> StoreFuture<'a, ()>;

    /// A page of the users that are not deleted.
    fn list<'a>(&'a self, conn: &'a mut PgConnection, query: &'a UserQuery) -> StoreFuture<'a, UserPage>;

    /// A user's identities, oldest first.
    fn identities<'a>(&'a self, conn: &'a mut PgConnection, user_id: Uuid) -> StoreFuture<'a, Vec<Identity>>;

    /// The user an identity belongs to.
    fn identity_owner<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        provider: &'a str,
        provider_id: &'a str,
    ) -> StoreFuture<'a, Option<Uuid>>;

    /// Links an identity to a user, or refreshes its data when it is already theirs. An
    /// identity of another user stays theirs (422 `identity_already_exists`).
    fn link<'a>(&'a self, conn: &'a mut PgConnection, user_id: Uuid, identity: NewIdentity) -> StoreFuture<'a, ()>;

    /// Unlinks one identity of a user (`Some(identity id)`) or all of them (`None`).
    fn unlink<'a>(&'a self, conn: &'a mut PgConnection, user_id: Uuid, identity: Option<Uuid>) -> StoreFuture<'a, ()>;
}

/// The default store: `auth.users` and `auth.identities` in the project's database.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgUserStore;

const USER_COLUMNS: &str = "id, aud, role, email, phone, encrypted_password, email_confirmed_at, phone_confirmed_at, \
     confirmed_at, invited_at, confirmation_token, confirmation_sent_at, recovery_token, recovery_sent_at, \
     email_change_token_new, email_change, email_change_sent_at, reauthentication_token, reauthentication_sent_at, \
     phone_change, phone_change_token, phone_change_sent_at, last_sign_in_at, raw_app_meta_data, raw_user_meta_data, \
     created_at, updated_at, banned_until, deleted_at, is_anonymous";

const IDENTITY_COLUMNS: &str =
    "id, provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at, email";

/// A unique-key violation on `auth.users`, as the error users see (told apart by the
/// constraint the schema names: `users_phone_key`, `users_pkey`, `users_email_partial_key`).
fn taken(e: sqlx::Error) -> Error {
    let e = ForgeError::from(e);
    if e.db_kind() != Some(DbErrorKind::UniqueViolation) {
        return Error::from_core(e);
    }
    match e.db_constraint() {
        Some("users_phone_key") => {
            Error::new(ErrorKind::PhoneExists, "Phone number already registered by another user")
        }
        Some("users_pkey") => Error::new(ErrorKind::UserAlreadyExists, "User already registered"),
        _ => Error::email_exists(),
    }
}

impl PgUserStore {
    async fn find_user(conn: &mut PgConnection, by: Lookup<'_>) -> Result<Option<User>> {
        let (condition, lock) = match by {
            Lookup::Id(_) => ("id = $1", ""),
            Lookup::Locked(_) => ("id = $1", " for update"),
            Lookup::Email(_) => ("email = $1 and not is_sso_user", ""),
            Lookup::Phone(_) => ("phone = $1", ""),
            Lookup::PendingEmail(_) => ("email_change = $1", ""),
            Lookup::PendingPhone(_) => ("phone_change = $1", ""),
            Lookup::Token(column, _) => (column.condition(), " for update"),
        };
        let sql = format!("select {USER_COLUMNS} from auth.users where {condition} limit 1{lock}");
        let query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        let query = match by {
            Lookup::Id(id) | Lookup::Locked(id) => query.bind(id),
            Lookup::Email(s)
            | Lookup::Phone(s)
            | Lookup::PendingEmail(s)
            | Lookup::PendingPhone(s)
            | Lookup::Token(_, s) => query.bind(s.to_owned()),
        };
        Ok(query.fetch_optional(conn).await?)
    }

    async fn create_user(conn: &mut PgConnection, new: NewUser) -> Result<User> {
        let id = new.id.unwrap_or_else(Uuid::new_v4);
        let identity = match new.identity {
            Some(i) => Some(i),
            None if new.anonymous => None,
            None => {
                let mut data = json!({
                    "sub": id.to_string(),
                    "email_verified": new.email_confirmed,
                    "phone_verified": new.phone_confirmed,
                });
                if let Some(e) = &new.email {
                    data["email"] = json!(e);
                }
                if let Some(p) = &new.phone {
                    data["phone"] = json!(p);
                }
                let provider = if new.email.is_some() { "email" } else { "phone" };
                Some(NewIdentity { provider: provider.into(), provider_id: id.to_string(), data })
            }
        };
        let provider = identity.as_ref().map_or("anonymous", |i| i.provider.as_str());
        let mut app = new.app_metadata;
        app.insert("provider".into(), json!(provider));
        app.insert("providers".into(), json!([provider]));
        sqlx::query(
            "insert into auth.users (instance_id, id, aud, role, email, phone, encrypted_password, email_confirmed_at, \
             phone_confirmed_at, invited_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at, \
             is_anonymous, banned_until, confirmation_token, recovery_token, email_change_token_new, email_change, \
             reauthentication_token) \
             values ('00000000-0000-0000-0000-000000000000', $1, 'authenticated', $2, $3, $4, $5, \
             case when $6 then now() end, case when $7 then now() end, case when $8 then now() end, $9, $10, now(), \
             now(), $11, $12, '', '', '', '', '')",
        )
        .bind(id)
        .bind(new.role.as_deref().unwrap_or("authenticated"))
        .bind(&new.email)
        .bind(&new.phone)
        .bind(new.password_hash.as_deref().unwrap_or(""))
        .bind(new.email_confirmed)
        .bind(new.phone_confirmed)
        .bind(new.invited)
        .bind(Value::Object(app))
        .bind(Value::Object(new.user_metadata))
        .bind(new.anonymous)
        .bind(new.banned_until)
        .execute(&mut *conn)
        .await
        .map_err(taken)?;
        if let Some(identity) = identity {
            Self::link_identity(&mut *conn, id, identity).await?;
        }
        Self::find_user(conn, Lookup::Id(id)).await?.ok_or_else(|| Error::internal("a user vanished after insert"))
    }

    async fn update_user(conn: &mut PgConnection, id: Uuid, change: UserChange) -> Result<User> {
        let sql = format!(
            "update auth.users set \
               email = case when $2 then $3 else email end, \
               phone = case when $4 then $5 else phone end, \
               encrypted_password = coalesce($6, encrypted_password), \
               email_confirmed_at = case $7::bool \
                 when true then case when $2 and $3 is distinct from email then now() \
                   else coalesce(email_confirmed_at, now()) end \
                 when false then null else email_confirmed_at end, \
               phone_confirmed_at = case $8::bool \
                 when true then case when $4 and $5 is distinct from phone then now() \
                   else coalesce(phone_confirmed_at, now()) end \
                 when false then null else phone_confirmed_at end, \
               raw_user_meta_data = coalesce($9, raw_user_meta_data), \
               raw_app_meta_data = coalesce($10, raw_app_meta_data), \
               role = coalesce($11, role), \
               banned_until = case when $12 then $13 else banned_until end, \
               is_anonymous = coalesce($14, is_anonymous), \
               email_change = coalesce($15, email_change), \
               phone_change = coalesce($16, phone_change), \
               confirmation_token = coalesce($17, confirmation_token), \
               confirmation_sent_at = case when $17 <> '' then now() else confirmation_sent_at end, \
               recovery_token = coalesce($18, recovery_token), \
               recovery_sent_at = case when $18 <> '' then now() else recovery_sent_at end, \
               email_change_token_new = coalesce($19, email_change_token_new), \
               email_change_sent_at = case when $19 <> '' then now() else email_change_sent_at end, \
               reauthentication_token = coalesce($20, reauthentication_token), \
               reauthentication_sent_at = case when $20 <> '' then now() else reauthentication_sent_at end, \
               phone_change_token = coalesce($21, phone_change_token), \
               phone_change_sent_at = case when $21 <> '' then now() else phone_change_sent_at end, \
               invited_at = case when $22 then now() else invited_at end, \
               last_sign_in_at = case when $23 then now() else last_sign_in_at end, \
               updated_at = now() \
             where id = $1 returning {USER_COLUMNS}"
        );
        let token = |c| change.token_for(c).map(str::to_owned);
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(change.email.is_some())
            .bind(change.email.clone().flatten())
            .bind(change.phone.is_some())
            .bind(change.phone.clone().flatten())
            .bind(&change.password_hash)
            .bind(change.email_confirmed)
            .bind(change.phone_confirmed)
            .bind(change.user_metadata.clone().map(Value::Object))
            .bind(change.app_metadata.clone().map(Value::Object))
            .bind(&change.role)
            .bind(change.banned_until.is_some())
            .bind(change.banned_until.flatten())
            .bind(change.anonymous)
            .bind(&change.email_change)
            .bind(&change.phone_change)
            .bind(token(TokenColumn::Confirmation))
            .bind(token(TokenColumn::Recovery))
            .bind(token(TokenColumn::EmailChangeNew))
            .bind(token(TokenColumn::Reauthentication))
            .bind(token(TokenColumn::PhoneChange))
            .bind(change.invited)
            .bind(change.signed_in)
            .fetch_optional(conn)
            .await
            .map_err(taken)?
            .ok_or_else(Error::user_not_found)
    }

    async fn delete_user(conn: &mut PgConnection, id: Uuid, how: Deletion) -> Result<()> {
        match how {
            Deletion::Hard => {
                sqlx::query("delete from auth.users where id = $1").bind(id).execute(&mut *conn).await?;
            }
            Deletion::Soft => {
                sqlx::query(
                    "update auth.users set deleted_at = now(), email = null, phone = null, encrypted_password = '', \
                     raw_user_meta_data = '{}', email_change = '', phone_change = '', confirmation_token = '', \
                     recovery_token = '', email_change_token_new = '', reauthentication_token = '', \
                     phone_change_token = '', updated_at = now() where id = $1",
                )
                .bind(id)
                .execute(&mut *conn)
                .await?;
                sqlx::query("delete from auth.identities where user_id = $1").bind(id).execute(&mut *conn).await?;
            }
        }
        Ok(())
    }

    async fn list_users(conn: &mut PgConnection, query: &UserQuery) -> Result<UserPage> {
        const MATCHES: &str = "deleted_at is null and ($1::text is null or email like '%' || $1 || '%' \
             or raw_user_meta_data ->> 'full_name' ilike '%' || $1 || '%')";
        let filter = query.filter.as_deref().filter(|f| !f.is_empty());
        let total: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select count(*) from auth.users where {MATCHES}")))
                .bind(filter)
                .fetch_one(&mut *conn)
                .await?;
        let order = if query.newest_first { "desc" } else { "asc" };
        let sql = format!(
            "select {USER_COLUMNS} from auth.users where {MATCHES} order by created_at {order}, id {order} \
             limit $2 offset $3"
        );
        let limit = i64::try_from(query.per_page).unwrap_or(i64::MAX);
        let offset = i64::try_from(query.page.saturating_sub(1).saturating_mul(query.per_page)).unwrap_or(i64::MAX);
        let users =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(filter).bind(limit).bind(offset).fetch_all(conn).await?;
        Ok(UserPage { users, total: u64::try_from(total).unwrap_or(0) })
    }

    async fn user_identities(conn: &mut PgConnection, user_id: Uuid) -> Result<Vec<Identity>> {
        let sql = format!("select {IDENTITY_COLUMNS} from auth.identities where user_id = $1 order by created_at, id");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(user_id).fetch_all(conn).await?)
    }

    async fn owner(conn: &mut PgConnection, provider: &str, provider_id: &str) -> Result<Option<Uuid>> {
        Ok(sqlx::query_scalar("select user_id from auth.identities where provider = $1 and provider_id = $2")
            .bind(provider)
            .bind(provider_id)
            .fetch_optional(conn)
            .await?)
    }

    async fn link_identity(conn: &mut PgConnection, user_id: Uuid, identity: NewIdentity) -> Result<()> {
        let linked = sqlx::query(
            "insert into auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, \
             updated_at) values ($1, $2, $3, $4, now(), now(), now()) \
             on conflict (provider_id, provider) do update set identity_data = excluded.identity_data, \
             last_sign_in_at = now(), updated_at = now() where auth.identities.user_id = excluded.user_id",
        )
        .bind(&identity.provider_id)
        .bind(user_id)
        .bind(&identity.data)
        .bind(&identity.provider)
        .execute(&mut *conn)
        .await?;
        if linked.rows_affected() == 0 {
            return Err(Error::new(ErrorKind::IdentityAlreadyExists, "Identity is already linked to another user"));
        }
        Self::sync_providers(conn, user_id).await
    }

    async fn unlink_identity(conn: &mut PgConnection, user_id: Uuid, identity: Option<Uuid>) -> Result<()> {
        sqlx::query("delete from auth.identities where user_id = $1 and ($2::uuid is null or id = $2)")
            .bind(user_id)
            .bind(identity)
            .execute(&mut *conn)
            .await?;
        Self::sync_providers(conn, user_id).await
    }

    /// Sets `app_metadata.providers` to the user's identity providers (oldest first) and
    /// `provider` to the first of them.
    async fn sync_providers(conn: &mut PgConnection, user_id: Uuid) -> Result<()> {
        sqlx::query(
            "with p as (select provider, min(created_at) as first from auth.identities where user_id = $1 \
               group by provider), \
             l as (select coalesce(jsonb_agg(provider order by first, provider), '[]'::jsonb) as providers from p) \
             update auth.users u set raw_app_meta_data = coalesce(u.raw_app_meta_data, '{}'::jsonb) \
               || jsonb_build_object('providers', l.providers) \
               || case when jsonb_array_length(l.providers) > 0 \
                    then jsonb_build_object('provider', l.providers -> 0) else '{}'::jsonb end \
             from l where u.id = $1",
        )
        .bind(user_id)
        .execute(conn)
        .await?;
        Ok(())
    }
}

impl UserStore for PgUserStore {
    fn find<'a>(&'a self, conn: &'a mut PgConnection, by: Lookup<'a>) -> StoreFuture<'a, Option<User>> {
        Box::pin(Self::find_user(conn, by))
    }

    fn create<'a>(&'a self, conn: &'a mut PgConnection, new: NewUser) -> StoreFuture<'a, User> {
        Box::pin(Self::create_user(conn, new))
    }

    fn update<'a>(&'a self, conn: &'a mut PgConnection, id: Uuid, change: UserChange) -> StoreFuture<'a, User> {
        Box::pin(Self::update_user(conn, id, change))
    }

    fn delete<'a>(&'a self, conn: &'a mut PgConnection, id: Uuid, how: Deletion) -> StoreFuture<'a, ()> {
        Box::pin(Self::delete_user(conn, id, how))
    }

    fn list<'a>(&'a self, conn: &'a mut PgConnection, query: &'a UserQuery) -> StoreFuture<'a, UserPage> {
        Box::pin(Self::list_users(conn, query))
    }

    fn identities<'a>(&'a self, conn: &'a mut PgConnection, user_id: Uuid) -> StoreFuture<'a, Vec<Identity>> {
        Box::pin(Self::user_identities(conn, user_id))
    }

    fn identity_owner<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        provider: &'a str,
        provider_id: &'a str,
    ) -> StoreFuture<'a, Option<Uuid>> {
        Box::pin(Self::owner(conn, provider, provider_id))
    }

    fn link<'a>(&'a self, conn: &'a mut PgConnection, user_id: Uuid, identity: NewIdentity) -> StoreFuture<'a, ()> {
        Box::pin(Self::link_identity(conn, user_id, identity))
    }

    fn unlink<'a>(&'a self, conn: &'a mut PgConnection, user_id: Uuid, identity: Option<Uuid>) -> StoreFuture<'a, ()> {
        Box::pin(Self::unlink_identity(conn, user_id, identity))
    }
}
