//! Creating and changing users.

use serde_json::{Map, Value, json};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::User;

/// A user to create.
#[derive(Debug, Default)]
pub(crate) struct NewUser {
    pub(crate) id: Option<Uuid>,
    pub(crate) email: Option<String>,
    pub(crate) phone: Option<String>,
    pub(crate) password_hash: Option<String>,
    pub(crate) user_metadata: Map<String, Value>,
    pub(crate) app_metadata: Map<String, Value>,
    pub(crate) email_confirmed: bool,
    pub(crate) phone_confirmed: bool,
    pub(crate) anonymous: bool,
    pub(crate) invited: bool,
    pub(crate) role: Option<String>,
    pub(crate) banned_until: Option<OffsetDateTime>,
    /// An external identity (provider, subject, data) instead of the email/phone one.
    pub(crate) external: Option<(String, String, Value)>,
}

/// Inserts a user and, unless anonymous, their `email` (or `phone`) identity.
pub(crate) async fn create(conn: &mut PgConnection, new: NewUser) -> Result<User> {
    let id = new.id.unwrap_or_else(Uuid::new_v4);
    let provider = if let Some((p, _, _)) = &new.external {
        p.as_str()
    } else if new.anonymous {
        "anonymous"
    } else if new.email.is_some() {
        "email"
    } else {
        "phone"
    };
    let mut app = new.app_metadata;
    app.insert("provider".into(), json!(provider));
    app.insert("providers".into(), json!([provider]));
    let inserted = sqlx::query(
        "insert into auth.users (instance_id, id, aud, role, email, phone, encrypted_password, email_confirmed_at, \
         phone_confirmed_at, invited_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous, \
         banned_until, confirmation_token, recovery_token, email_change_token_new, email_change, reauthentication_token) \
         values ('00000000-0000-0000-0000-000000000000', $1, 'authenticated', $2, $3, $4, $5, \
         case when $6 then now() end, case when $7 then now() end, case when $8 then now() end, $9, $10, now(), now(), \
         $11, $12, '', '', '', '', '')",
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
    .await;
    match inserted {
        Ok(_) => {}
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23505") => {
            return Err(if db.message().contains("phone") {
                Error::api(422, "phone_exists", "Phone number already registered by another user")
            } else if db.message().contains("pkey") {
                Error::api(422, "user_already_exists", "User already registered")
            } else {
                Error::email_exists()
            });
        }
        Err(e) => return Err(e.into()),
    }
    if let Some((provider, subject, data)) = &new.external {
        add_identity(&mut *conn, id, provider, subject, data.clone()).await?;
    } else if !new.anonymous {
        let mut data = json!({ "sub": id.to_string(), "email_verified": new.email_confirmed, "phone_verified": new.phone_confirmed });
        if let Some(e) = &new.email {
            data["email"] = json!(e);
        }
        if let Some(p) = &new.phone {
            data["phone"] = json!(p);
        }
        add_identity(&mut *conn, id, provider, &id.to_string(), data).await?;
    }
    User::by_id(&mut *conn, id).await?.ok_or_else(|| Error::internal("a user vanished after insert"))
}

/// Refuses (422 `email_exists`) an address another user already has; `owner` is the user
/// who may keep it (none: nobody may have it).
pub(crate) async fn ensure_email_free(conn: &mut PgConnection, email: &str, owner: Option<Uuid>) -> Result<()> {
    let taken: bool = sqlx::query_scalar(
        "select exists (select 1 from auth.users where email = $1 and ($2::uuid is null or id <> $2))",
    )
    .bind(email)
    .bind(owner)
    .fetch_one(conn)
    .await?;
    if taken { Err(Error::email_exists()) } else { Ok(()) }
}

/// Adds (or refreshes) the user's `email` identity for `email`.
pub(crate) async fn set_email_identity(
    conn: &mut PgConnection,
    user_id: Uuid,
    email: &str,
    verified: bool,
) -> Result<()> {
    let data =
        json!({ "sub": user_id.to_string(), "email": email, "email_verified": verified, "phone_verified": false });
    add_identity(conn, user_id, "email", &user_id.to_string(), data).await
}

/// Adds (or refreshes) an identity and recomputes `app_metadata.provider(s)`.
pub(crate) async fn add_identity(
    conn: &mut PgConnection,
    user_id: Uuid,
    provider: &str,
    provider_id: &str,
    data: Value,
) -> Result<()> {
    sqlx::query(
        "insert into auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at) \
         values ($1, $2, $3, $4, now(), now(), now()) \
         on conflict (provider_id, provider) do update set identity_data = excluded.identity_data, \
         last_sign_in_at = now(), updated_at = now() where auth.identities.user_id = excluded.user_id",
    )
    .bind(provider_id)
    .bind(user_id)
    .bind(data)
    .bind(provider)
    .execute(&mut *conn)
    .await?;
    sync_providers(conn, user_id).await
}

/// Sets `app_metadata.providers` to the user's identity providers (oldest first) and
/// `provider` to the first of them.
pub(crate) async fn sync_providers(conn: &mut PgConnection, user_id: Uuid) -> Result<()> {
    sqlx::query(
        "with p as (select provider, min(created_at) as first from auth.identities where user_id = $1 group by provider), \
         l as (select coalesce(jsonb_agg(provider order by first, provider), '[]'::jsonb) as providers from p) \
         update auth.users u set raw_app_meta_data = coalesce(u.raw_app_meta_data, '{}'::jsonb) \
           || jsonb_build_object('providers', l.providers) \
           || case when jsonb_array_length(l.providers) > 0 then jsonb_build_object('provider', l.providers -> 0) else '{}'::jsonb end \
         from l where u.id = $1",
    )
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Merges `patch` into a metadata object: keys set to `null` are removed (GoTrue's rule).
pub(crate) fn merge_metadata(base: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (k, v) in patch {
        if v.is_null() {
            base.remove(&k);
        } else {
            base.insert(k, v);
        }
    }
}

/// An E.164 phone number without `+` and spaces, or 400 `validation_failed`.
pub(crate) fn normalize_phone(phone: &str) -> Result<String> {
    let digits: String = phone.chars().filter(|c| !matches!(c, '+' | ' ' | '-' | '(' | ')')).collect();
    let valid =
        (2..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
    if valid { Ok(digits) } else { Err(Error::validation("Invalid phone number format (E.164 required)")) }
}
