//! Helpers for changing users through the [`crate::UserStore`].

use serde_json::{Map, Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::service::Auth;
use crate::store::{Lookup, NewIdentity};

/// Refuses (422 `email_exists`) an address another user already has; `owner` is the user
/// who may keep it (none: nobody may have it).
pub(crate) async fn ensure_email_free(
    auth: &Auth,
    conn: &mut PgConnection,
    email: &str,
    owner: Option<Uuid>,
) -> Result<()> {
    let holder = auth.store().find(conn, Lookup::Email(email)).await?;
    if holder.is_some_and(|u| Some(u.id) != owner) { Err(Error::email_exists()) } else { Ok(()) }
}

/// Adds (or refreshes) the user's `email` identity for `email`.
pub(crate) async fn set_email_identity(
    auth: &Auth,
    conn: &mut PgConnection,
    user_id: Uuid,
    email: &str,
    verified: bool,
) -> Result<()> {
    let data =
        json!({ "sub": user_id.to_string(), "email": email, "email_verified": verified, "phone_verified": false });
    let identity = NewIdentity { provider: "email".into(), provider_id: user_id.to_string(), data };
    auth.store().link(conn, user_id, identity).await
}

/// Adds (or refreshes) the user's `phone` identity for `phone`.
pub(crate) async fn set_phone_identity(
    auth: &Auth,
    conn: &mut PgConnection,
    user_id: Uuid,
    phone: &str,
    verified: bool,
) -> Result<()> {
    let data =
        json!({ "sub": user_id.to_string(), "phone": phone, "email_verified": false, "phone_verified": verified });
    let identity = NewIdentity { provider: "phone".into(), provider_id: user_id.to_string(), data };
    auth.store().link(conn, user_id, identity).await
}

/// Sets `<field>: true` in the data of the user's `provider` identity, keeping the rest.
pub(crate) async fn mark_verified(
    auth: &Auth,
    conn: &mut PgConnection,
    user_id: Uuid,
    provider: &str,
    field: &str,
) -> Result<()> {
    let store = auth.store();
    let Some(identity) = store.identities(&mut *conn, user_id).await?.into_iter().find(|i| i.provider == provider)
    else {
        return Ok(());
    };
    let mut data = identity.identity_data;
    if let Value::Object(map) = &mut data {
        map.insert(field.to_owned(), Value::Bool(true));
    }
    store
        .link(conn, user_id, NewIdentity { provider: provider.to_owned(), provider_id: identity.provider_id, data })
        .await
}

/// Refuses (422 `phone_exists`) a number another user already has.
pub(crate) async fn ensure_phone_free(
    auth: &Auth,
    conn: &mut PgConnection,
    phone: &str,
    owner: Option<Uuid>,
) -> Result<()> {
    let holder = auth.store().find(conn, Lookup::Phone(phone)).await?;
    if holder.is_some_and(|u| Some(u.id) != owner) {
        Err(Error::api(422, "phone_exists", "Phone number already registered by another user"))
    } else {
        Ok(())
    }
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
