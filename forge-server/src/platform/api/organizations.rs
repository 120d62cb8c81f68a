//! Organizations, their members and invitations, and their audit log.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Body, Need, organization_for, rfc3339};
use crate::platform::Platform;
use crate::platform::error::Error;
use crate::platform::keys::hash;
use crate::platform::store::{Organization, Role};
use crate::platform::users::Caller;

fn shown(org: &Organization) -> Value {
    json!({ "id": org.slug, "slug": org.slug, "name": org.name, "created_at": rfc3339(org.created_at) })
}

/// `GET /v1/organizations`: the caller's organizations.
pub async fn list(State(platform): State<Platform>, caller: Caller) -> Result<axum::Json<Value>, Error> {
    let orgs = platform.store().organizations_of(caller.user_id).await?;
    Ok(axum::Json(Value::Array(orgs.iter().map(|(o, _)| shown(o)).collect())))
}

/// A new organization.
#[derive(Debug, Deserialize)]
pub struct CreateOrganization {
    /// Its name.
    pub name: String,
}

/// `POST /v1/organizations`: a new organization, owned by the caller.
pub async fn create(
    State(platform): State<Platform>,
    caller: Caller,
    Body(req): Body<CreateOrganization>,
) -> Result<Response, Error> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 256 {
        return Err(Error::invalid("An organization's name must have 1 to 256 characters"));
    }
    let store = platform.store();
    let base: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let base: String = base.chars().take(40).collect();
    let base = if base.is_empty() { "org".to_owned() } else { base };
    let slug = format!("{base}-{}", &crate::platform::projects::new_ref().as_str()[..8]);
    let mut tx = store.pool().begin().await?;
    let org = store.create_organization(&mut *tx, &slug, name).await?;
    store.put_member(&mut *tx, org.id, caller.user_id, Role::Owner).await?;
    store.audit(&mut *tx, &caller.actor(), "organization.create", Some(org.id), None, json!({ "name": name })).await?;
    tx.commit().await?;
    Ok((http::StatusCode::CREATED, axum::Json(shown(&org))).into_response())
}

/// `GET /v1/organizations/{slug}`.
pub async fn get(
    State(platform): State<Platform>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<axum::Json<Value>, Error> {
    let (org, role) = organization_for(&platform, &caller, &slug, Need::Read).await?;
    let mut body = shown(&org);
    body["role_name"] = json!(role.display());
    Ok(axum::Json(body))
}

/// `GET /v1/organizations/{slug}/members`.
pub async fn members(
    State(platform): State<Platform>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<axum::Json<Value>, Error> {
    let (org, _) = organization_for(&platform, &caller, &slug, Need::Read).await?;
    let members = platform.store().members(org.id).await?;
    Ok(axum::Json(Value::Array(
        members
            .iter()
            .map(|m| {
                let role = Role::parse(&m.role).map(Role::display).unwrap_or("Read only");
                json!({ "user_id": m.user_id, "user_name": m.email, "email": m.email, "role_name": role, "mfa_enabled": false })
            })
            .collect(),
    )))
}

/// A member's new role.
#[derive(Debug, Deserialize)]
pub struct UpdateMember {
    /// `Owner`, `Administrator`, `Developer` or `Read only`.
    pub role_name: String,
}

fn parse_role(name: &str) -> Result<Role, Error> {
    Role::parse(name).ok_or_else(|| Error::invalid("role_name must be Owner, Administrator, Developer or Read only"))
}

/// Owners may grant or take away ownership; administrators may manage everyone else.
fn may_manage(caller_role: Role, target: Role) -> bool {
    caller_role == Role::Owner || (caller_role == Role::Administrator && target != Role::Owner)
}

/// `PATCH /v1/organizations/{slug}/members/{user_id}`.
pub async fn update_member(
    State(platform): State<Platform>,
    caller: Caller,
    Path((slug, user)): Path<(String, Uuid)>,
    Body(req): Body<UpdateMember>,
) -> Result<axum::Json<Value>, Error> {
    let (org, role) = organization_for(&platform, &caller, &slug, Need::Admin).await?;
    let new_role = parse_role(&req.role_name)?;
    let store = platform.store();
    let current = store.role(org.id, user).await?.ok_or_else(|| Error::not_found("Member"))?;
    if !may_manage(role, current) || !may_manage(role, new_role) {
        return Err(Error::forbidden("Only owners may grant or take away ownership"));
    }
    if current == Role::Owner && new_role != Role::Owner && store.owners(org.id).await? <= 1 {
        return Err(Error::conflict("An organization keeps at least one owner"));
    }
    let mut tx = store.pool().begin().await?;
    store.put_member(&mut *tx, org.id, user, new_role).await?;
    store
        .audit(
            &mut *tx,
            &caller.actor(),
            "member.update",
            Some(org.id),
            None,
            json!({ "user_id": user, "role": new_role.as_str() }),
        )
        .await?;
    tx.commit().await?;
    Ok(axum::Json(json!({ "user_id": user, "role_name": new_role.display() })))
}

/// `DELETE /v1/organizations/{slug}/members/{user_id}`: removes a member (any member may
/// leave).
pub async fn remove_member(
    State(platform): State<Platform>,
    caller: Caller,
    Path((slug, user)): Path<(String, Uuid)>,
) -> Result<Response, Error> {
    let need = if user == caller.user_id { Need::Read } else { Need::Admin };
    let (org, role) = organization_for(&platform, &caller, &slug, need).await?;
    let store = platform.store();
    let current = store.role(org.id, user).await?.ok_or_else(|| Error::not_found("Member"))?;
    if user != caller.user_id && !may_manage(role, current) {
        return Err(Error::forbidden("Only owners may remove an owner"));
    }
    if current == Role::Owner && store.owners(org.id).await? <= 1 {
        return Err(Error::conflict("An organization keeps at least one owner"));
    }
    store.remove_member(org.id, user).await?;
    store.audit(store.pool(), &caller.actor(), "member.remove", Some(org.id), None, json!({ "user_id": user })).await?;
    Ok(http::StatusCode::NO_CONTENT.into_response())
}

/// An invitation.
#[derive(Debug, Deserialize)]
pub struct Invite {
    /// Who.
    pub email: String,
    /// As what (`Developer` by default).
    #[serde(default)]
    pub role_name: Option<String>,
}

/// `POST /v1/organizations/{slug}/members/invitations`: mails an invitation through the auth
/// service's mailer. The token is also answered, so an administrator can pass it on.
pub async fn invite(
    State(platform): State<Platform>,
    caller: Caller,
    Path(slug): Path<String>,
    Body(req): Body<Invite>,
) -> Result<Response, Error> {
    let (org, role) = organization_for(&platform, &caller, &slug, Need::Admin).await?;
    let invited_role = parse_role(req.role_name.as_deref().unwrap_or("developer"))?;
    if !may_manage(role, invited_role) {
        return Err(Error::forbidden("Only owners may invite owners"));
    }
    let email = req.email.trim().to_lowercase();
    if !email.contains('@') || email.len() > 320 {
        return Err(Error::invalid("A valid email address is required"));
    }
    let token = crate::platform::projects::new_ref().to_string() + crate::platform::projects::new_ref().as_str();
    let id = platform.store().invite(org.id, &email, invited_role, &hash(&token), Some(caller.user_id)).await?;
    platform
        .store()
        .audit(
            platform.store().pool(),
            &caller.actor(),
            "member.invite",
            Some(org.id),
            None,
            json!({ "email": email, "role": invited_role.as_str() }),
        )
        .await?;
    platform.mail_invitation(&org, &email, &token).await;
    Ok((
        http::StatusCode::CREATED,
        axum::Json(json!({ "id": id, "email": email, "role_name": invited_role.display(), "token": token })),
    )
        .into_response())
}

/// An invitation's token.
#[derive(Debug, Deserialize)]
pub struct Accept {
    /// The token from the invitation.
    pub token: String,
}

/// `POST /v1/invitations/accept`: the caller (whose email the invitation names) joins.
pub async fn accept(
    State(platform): State<Platform>,
    caller: Caller,
    Body(req): Body<Accept>,
) -> Result<axum::Json<Value>, Error> {
    let store = platform.store();
    let mut tx = store.pool().begin().await?;
    let (org, role) = store
        .accept_invitation(&mut *tx, &hash(req.token.trim()), &caller.email)
        .await?
        .ok_or_else(|| Error::not_found("Invitation"))?;
    store.put_member(&mut *tx, org, caller.user_id, role).await?;
    store.audit(&mut *tx, &caller.actor(), "member.join", Some(org), None, json!({ "role": role.as_str() })).await?;
    tx.commit().await?;
    let slug: String = sqlx::query_scalar("select slug from forge.organizations where id = $1")
        .bind(org)
        .fetch_one(store.pool())
        .await?;
    Ok(axum::Json(json!({ "organization_id": slug, "role_name": role.display() })))
}

/// The audit log's page size.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// How many entries (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// `GET /v1/organizations/{slug}/audit`: newest first (administrators).
pub async fn audit(
    State(platform): State<Platform>,
    caller: Caller,
    Path(slug): Path<String>,
    Query(q): Query<AuditQuery>,
) -> Result<axum::Json<Value>, Error> {
    let (org, _) = organization_for(&platform, &caller, &slug, Need::Admin).await?;
    let rows = platform.store().audit_log(org.id, q.limit.unwrap_or(100).clamp(1, 1000)).await?;
    Ok(axum::Json(serde_json::to_value(rows).map_err(Error::internal)?))
}
