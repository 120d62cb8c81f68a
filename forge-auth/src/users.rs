//! Helpers for changing users through the [`crate::UserStore`].

use serde_json::{Map, Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{Error, ErrorKind, Result};
use crate::service::Auth;
use crate::store::{Lookup, NewIdentity};

/// An email address or a phone number, as a user's contact and identity.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Contact<'a> {
    Email(&'a str),
    Phone(&'a str),
}

impl Contact<'_> {
    fn provider(self) -> &'static str {
        match self {
            Contact::Email(_) => "email",
            Contact::Phone(_) => "phone",
        }
    }
}

/// Refuses (422 `email_exists` / `phone_exists`) a contact another user already has; `owner`
/// is the user who may keep it (none: nobody may have it).
pub(crate) async fn ensure_free(
    auth: &Auth,
    conn: &mut PgConnection,
    contact: Contact<'_>,
    owner: Option<Uuid>,
) -> Result<()> {
    let lookup = match contact {
        Contact::Email(e) => Lookup::Email(e),
        Contact::Phone(p) => Lookup::Phone(p),
    };
    let holder = auth.store().find(conn, lookup).await?;
    if holder.is_none_or(|u| Some(u.id) == owner) {
        return Ok(());
    }
    Err(match contact {
        Contact::Email(_) => Error::email_exists(),
        Contact::Phone(_) => Error::new(ErrorKind::PhoneExists, "Phone number already registered by another user"),
    })
}

/// Adds (or refreshes) the user's `email` or `phone` identity for `contact`.
pub(crate) async fn set_identity(
    auth: &Auth,
    conn: &mut PgConnection,
    user_id: Uuid,
    contact: Contact<'_>,
    verified: bool,
) -> Result<()> {
    let mut data = json!({ "sub": user_id.to_string(), "email_verified": false, "phone_verified": false });
    match contact {
        Contact::Email(e) => (data["email"], data["email_verified"]) = (json!(e), json!(verified)),
        Contact::Phone(p) => (data["phone"], data["phone_verified"]) = (json!(p), json!(verified)),
    }
    let identity = NewIdentity { provider: contact.provider().into(), provider_id: user_id.to_string(), data };
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
