//! `POST /signup`: email sign-up and anonymous sign-in.

use axum::Json;
use axum::extract::{Query, State};
use forge_core::Project;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Guarded, RedirectQuery, SignupGuard, normalize_email};
use crate::error::{Error, ErrorKind, Result};
use crate::limit::Route;
use crate::links::{self, LinkSpec, pkce_params};
use crate::mail::MailKind;
use crate::model::{Identity, User};
use crate::password;
use crate::service::Auth;
use crate::session::{self, ClientInfo, SessionExtras};
use crate::store::{Lookup, NewUser};

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct SignupBody {
    email: Option<String>,
    phone: Option<String>,
    password: Option<String>,
    data: Option<Map<String, Value>>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    channel: Option<String>,
}

pub(crate) async fn signup(
    State(auth): State<Auth>,
    project: Project,
    client: ClientInfo,
    Query(q): Query<RedirectQuery>,
    guarded: Guarded<SignupGuard>,
) -> Result<Json<Value>> {
    let body: SignupBody = guarded.json()?;
    let config = auth.config();
    if config.disable_signup {
        return Err(Error::new(ErrorKind::SignupDisabled, "Signups not allowed for this instance"));
    }
    let email = body.email.as_deref().filter(|e| !e.trim().is_empty());
    let phone = body.phone.as_deref().filter(|p| !p.trim().is_empty());
    let metadata = body.data.clone().unwrap_or_default();
    match (email, phone) {
        (None, None) => anonymous(&auth, &project, &client, metadata).await,
        (Some(_), Some(_)) => {
            Err(Error::validation("Only an email address or phone number should be provided on signup."))
        }
        (None, Some(phone)) => {
            auth.0.limits.check(Route::Signup, client.ip)?;
            let phone = super::phone::enabled_phone(&auth, phone)?;
            let channel = super::phone::channel(body.channel.as_deref())?;
            let hash = hash_new_password(config, body.password.as_deref())?;
            let hash = hash.await.map_err(Error::internal)??;
            Ok(Json(super::phone::signup(&auth, &project, &client, phone, hash, metadata, channel).await?))
        }
        (Some(email), None) => {
            auth.0.limits.check(Route::Signup, client.ip)?;
            if !config.email_enabled {
                return Err(Error::new(ErrorKind::EmailProviderDisabled, "Email signups are disabled"));
            }
            let email = normalize_email(email)?;
            // Hashed before the address is looked up, so known and unknown addresses cost
            // the same.
            let hash = hash_new_password(config, body.password.as_deref())?;
            let pkce = pkce_params(body.code_challenge.as_deref(), body.code_challenge_method.as_deref())?;
            let redirect_to = auth.redirect_target(&project, q.redirect_to.as_deref());
            let hash = hash.await.map_err(Error::internal)??;
            email_signup(&auth, &project, &client, email, hash, metadata, pkce, redirect_to).await
        }
    }
}

async fn anonymous(
    auth: &Auth,
    project: &Project,
    client: &ClientInfo,
    metadata: Map<String, Value>,
) -> Result<Json<Value>> {
    if !auth.config().anonymous_enabled {
        return Err(Error::new(ErrorKind::AnonymousProviderDisabled, "Anonymous sign-ins are disabled"));
    }
    auth.0.limits.check(Route::Anonymous, client.ip)?;
    let mut tx = project.db().pool().begin().await?;
    let new = NewUser { anonymous: true, user_metadata: metadata, ..NewUser::default() };
    let user = auth.store().create(&mut tx, new).await?;
    let issued = session::start(auth, &mut tx, &user, "anonymous", client).await?;
    Ok(Json(session::respond(auth, project, tx, issued, SessionExtras::default()).await?))
}

#[allow(clippy::too_many_arguments)]
async fn email_signup(
    auth: &Auth,
    project: &Project,
    client: &ClientInfo,
    email: String,
    hash: String,
    metadata: Map<String, Value>,
    pkce: Option<(crate::crypto::ChallengeMethod, String)>,
    redirect_to: String,
) -> Result<Json<Value>> {
    let autoconfirm = auth.config().mailer_autoconfirm;
    let mut tx = project.db().pool().begin().await?;
    let existing = auth.store().find(&mut tx, Lookup::Email(&email)).await?;
    let user = match existing {
        Some(u) if u.email_confirmed() => {
            if autoconfirm {
                return Err(Error::new(ErrorKind::UserAlreadyExists, "User already registered"));
            }
            // Confirmation is on: answer as for a new address, so sign-up does not reveal
            // who is registered. Nothing is stored or sent, but the re-send interval counts.
            auth.0.limits.mail(MailKind::Confirmation, &email)?;
            return Ok(Json(obfuscated_user(Some(&email), None, metadata)));
        }
        Some(u) => {
            // Registered but unconfirmed (signed up, invited, or created by an admin): nobody
            // has proved they own the address, so a sign-up changes nothing. With
            // confirmation on, the owner gets the confirmation again.
            if autoconfirm {
                return Err(Error::new(ErrorKind::UserAlreadyExists, "User already registered"));
            }
            let spec = LinkSpec {
                kind: MailKind::Confirmation,
                address: email.clone(),
                redirect_to,
                pkce: None,
                reset: false,
            };
            let mail = links::prepare(auth, project, &mut tx, &u, &spec).await?;
            tx.commit().await?;
            links::deliver(auth, mail).await?;
            return Ok(Json(obfuscated_user(Some(&email), None, metadata)));
        }
        None => {
            let new = NewUser {
                email: Some(email.clone()),
                password_hash: Some(hash),
                user_metadata: metadata,
                email_confirmed: autoconfirm,
                ..NewUser::default()
            };
            auth.store().create(&mut tx, new).await?
        }
    };
    if autoconfirm {
        let issued = session::start(auth, &mut tx, &user, "password", client).await?;
        return Ok(Json(session::respond(auth, project, tx, issued, SessionExtras::default()).await?));
    }
    let spec = LinkSpec { kind: MailKind::Confirmation, address: email, redirect_to, pkce, reset: false };
    let mail = links::prepare(auth, project, &mut tx, &user, &spec).await?;
    let user =
        auth.store().find(&mut tx, Lookup::Id(user.id)).await?.ok_or_else(|| Error::internal("user vanished"))?;
    tx.commit().await?;
    links::deliver(auth, mail).await?;
    Ok(Json(crate::model::user_json(auth, &mut *project.db().pool().acquire().await?, &user).await?))
}

/// Checks a new password against the policy and starts hashing it (argon2id, off the async
/// threads).
fn hash_new_password(
    config: &crate::AuthConfig,
    password: Option<&str>,
) -> Result<tokio::task::JoinHandle<std::result::Result<String, password::HashError>>> {
    let password = password.unwrap_or_default();
    if password.is_empty() {
        return Err(Error::validation("Signup requires a valid password"));
    }
    if password.len() > 72 * 4 {
        return Err(Error::validation("Password cannot be longer than 288 characters"));
    }
    config.password_policy().check(password).map_err(Error::weak_password)?;
    let password = password.to_owned();
    Ok(tokio::task::spawn_blocking(move || password::hash(&password)))
}

/// What sign-up answers for an address or number that is already registered, when
/// confirmation is on: exactly what a new, unconfirmed user looks like (random ids), so the
/// response does not reveal who is registered.
pub(crate) fn obfuscated_user(email: Option<&str>, phone: Option<&str>, metadata: Map<String, Value>) -> Value {
    let now = Some(OffsetDateTime::now_utc());
    let id = Uuid::new_v4();
    let provider = if email.is_some() { "email" } else { "phone" };
    let mut identity_data = json!({ "sub": id.to_string(), "email_verified": false, "phone_verified": false });
    if let Some(e) = email {
        identity_data["email"] = json!(e);
    }
    if let Some(p) = phone {
        identity_data["phone"] = json!(p);
    }
    let user = User {
        id,
        aud: Some("authenticated".into()),
        role: Some("authenticated".into()),
        email: email.map(str::to_owned),
        phone: phone.map(str::to_owned),
        encrypted_password: None,
        email_confirmed_at: None,
        phone_confirmed_at: None,
        confirmed_at: None,
        invited_at: None,
        confirmation_token: None,
        confirmation_sent_at: now,
        recovery_token: None,
        recovery_sent_at: None,
        email_change_token_new: None,
        email_change: None,
        email_change_sent_at: None,
        reauthentication_token: None,
        reauthentication_sent_at: None,
        phone_change: None,
        phone_change_token: None,
        phone_change_sent_at: None,
        last_sign_in_at: None,
        raw_app_meta_data: Some(json!({ "provider": provider, "providers": [provider] })),
        raw_user_meta_data: Some(Value::Object(metadata)),
        created_at: now,
        updated_at: now,
        banned_until: None,
        deleted_at: None,
        is_anonymous: false,
    };
    let identity = Identity {
        id: Uuid::new_v4(),
        provider_id: id.to_string(),
        user_id: id,
        identity_data,
        provider: provider.into(),
        last_sign_in_at: now,
        created_at: now,
        updated_at: now,
        email: email.map(str::to_owned),
    };
    user.to_json(&[identity], &[])
}
