//! Organizations, their members and invitations, and their audit log.

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{Body, ErrorBody, Need, Params, organization_for, rfc3339};
use crate::platform::Platform;
use crate::platform::error::Error;
use crate::platform::keys::hash;
use crate::platform::store::{self, AuditRow, Role};
use crate::platform::users::Caller;

/// An organization.
#[derive(Debug, Serialize, ToSchema)]
pub struct Organization {
    /// Its id: the slug (as Supabase's API shows it).
    pub id: String,
    /// Its slug.
    pub slug: String,
    /// Its name.
    pub name: String,
    /// When it was made.
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<&store::Organization> for Organization {
    fn from(org: &store::Organization) -> Self {
        Organization {
            id: org.slug.clone(),
            slug: org.slug.clone(),
            name: org.name.clone(),
            created_at: rfc3339(org.created_at),
        }
    }
}

/// An organization, with the caller's role in it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationDetail {
    /// Its id: the slug (as Supabase's API shows it).
    pub id: String,
    /// Its slug.
    pub slug: String,
    /// Its name.
    pub name: String,
    /// When it was made.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The caller's role: `Owner`, `Administrator`, `Developer` or `Read only`.
    pub role_name: String,
}

/// A member of an organization.
#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    /// The member's user id.
    pub user_id: Uuid,
    /// The member's name (their email).
    pub user_name: Option<String>,
    /// The member's email.
    pub email: Option<String>,
    /// `Owner`, `Administrator`, `Developer` or `Read only`.
    pub role_name: String,
    /// Whether the member uses MFA (not reported: always false).
    pub mfa_enabled: bool,
}

/// A member's role, changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberRole {
    /// The member's user id.
    pub user_id: Uuid,
    /// The new role.
    pub role_name: String,
}

/// An invitation, sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct Invitation {
    /// Its id.
    pub id: Uuid,
    /// Who is invited.
    pub email: String,
    /// As what.
    pub role_name: String,
    /// The invitation's token, for `POST /v1/invitations/accept` (also mailed).
    pub token: String,
}

/// An invitation, accepted.
#[derive(Debug, Serialize, ToSchema)]
pub struct Joined {
    /// The organization joined (its slug).
    pub organization_id: String,
    /// The caller's role in it.
    pub role_name: String,
}

/// One audit-log entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Its position.
    pub id: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who (user id), if a user.
    pub actor_id: Option<Uuid>,
    /// Who, as shown (email, or `system`).
    pub actor: String,
    /// What, e.g. `project.create`.
    pub action: String,
    /// Which project, if one.
    pub project_ref: Option<String>,
    /// More.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        let AuditRow { id, at, actor_id, actor, action, project_ref, details } = row;
        AuditEntry { id, at, actor_id, actor, action, project_ref, details }
    }
}

/// `GET /v1/organizations`: the caller's organizations.
#[utoipa::path(
    get,
    path = "/organizations",
    operation_id = "v1-list-all-organizations",
    tag = "organizations",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's organizations", body = Vec<Organization>),
        (status = 401, description = "No valid token or session", body = ErrorBody),
    )
)]
pub async fn list(State(platform): State<Platform>, caller: Caller) -> Result<axum::Json<Vec<Organization>>, Error> {
    let orgs = platform.store().organizations_of(caller.user_id).await?;
    Ok(axum::Json(orgs.iter().map(|(o, _)| Organization::from(o)).collect()))
}

/// A new organization.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateOrganization {
    /// Its name.
    pub name: String,
}

/// `POST /v1/organizations`: a new organization, owned by the caller.
#[utoipa::path(
    post,
    path = "/organizations",
    operation_id = "v1-create-an-organization",
    tag = "organizations",
    security(("bearer" = [])),
    request_body = CreateOrganization,
    responses(
        (status = 201, description = "The new organization; the caller owns it", body = Organization),
        (status = 400, description = "A malformed body or an empty or too long name", body = ErrorBody),
        (status = 401, description = "No valid token or session", body = ErrorBody),
    )
)]
pub async fn create(
    State(platform): State<Platform>,
    caller: Caller,
    Body(req): Body<CreateOrganization>,
) -> Result<(http::StatusCode, axum::Json<Organization>), Error> {
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
    Ok((http::StatusCode::CREATED, axum::Json(Organization::from(&org))))
}

/// `GET /v1/organizations/{slug}`.
#[utoipa::path(
    get,
    path = "/organizations/{slug}",
    operation_id = "v1-get-an-organization",
    tag = "organizations",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The organization's slug")),
    responses(
        (status = 200, description = "The organization and the caller's role in it", body = OrganizationDetail),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 404, description = "No such organization of the caller's", body = ErrorBody),
    )
)]
pub async fn get(
    State(platform): State<Platform>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<axum::Json<OrganizationDetail>, Error> {
    let (org, role) = organization_for(&platform, &caller, &slug, Need::Read).await?;
    let Organization { id, slug, name, created_at } = Organization::from(&org);
    Ok(axum::Json(OrganizationDetail { id, slug, name, created_at, role_name: role.display().to_owned() }))
}

/// `GET /v1/organizations/{slug}/members`.
#[utoipa::path(
    get,
    path = "/organizations/{slug}/members",
    operation_id = "v1-list-organization-members",
    tag = "organizations",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The organization's slug")),
    responses(
        (status = 200, description = "The organization's members", body = Vec<Member>),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 404, description = "No such organization of the caller's", body = ErrorBody),
    )
)]
pub async fn members(
    State(platform): State<Platform>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<axum::Json<Vec<Member>>, Error> {
    let (org, _) = organization_for(&platform, &caller, &slug, Need::Read).await?;
    let members = platform.store().members(org.id).await?;
    Ok(axum::Json(
        members
            .into_iter()
            .map(|m| Member {
                user_id: m.user_id,
                user_name: m.email.clone(),
                email: m.email,
                role_name: Role::parse(&m.role).map(Role::display).unwrap_or("Read only").to_owned(),
                mfa_enabled: false,
            })
            .collect(),
    ))
}

/// A member's new role.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateMember {
    /// `Owner`, `Administrator`, `Developer` or `Read only`.
    pub role_name: String,
}

/// A member's id from the path; one that is not a UUID names no member.
fn member_id(text: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(text).map_err(|_| Error::not_found("Member"))
}

fn parse_role(name: &str) -> Result<Role, Error> {
    Role::parse(name).ok_or_else(|| Error::invalid("role_name must be Owner, Administrator, Developer or Read only"))
}

/// Owners may grant or take away ownership; administrators may manage everyone else.
fn may_manage(caller_role: Role, target: Role) -> bool {
    caller_role == Role::Owner || (caller_role == Role::Administrator && target != Role::Owner)
}

/// `PATCH /v1/organizations/{slug}/members/{user_id}`.
#[utoipa::path(
    patch,
    path = "/organizations/{slug}/members/{user_id}",
    operation_id = "v1-update-organization-member",
    tag = "organizations",
    security(("bearer" = [])),
    params(
        ("slug" = String, Path, description = "The organization's slug"),
        ("user_id" = Uuid, Path, description = "The member's user id"),
    ),
    request_body = UpdateMember,
    responses(
        (status = 200, description = "The member's new role", body = MemberRole),
        (status = 400, description = "A malformed body or an unknown role", body = ErrorBody),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 403, description = "Only owners and administrators manage members; only owners manage owners", body = ErrorBody),
        (status = 404, description = "No such organization or member", body = ErrorBody),
        (status = 409, description = "An organization keeps at least one owner", body = ErrorBody),
    )
)]
pub async fn update_member(
    State(platform): State<Platform>,
    caller: Caller,
    Path((slug, user)): Path<(String, String)>,
    Body(req): Body<UpdateMember>,
) -> Result<axum::Json<MemberRole>, Error> {
    let (org, role) = organization_for(&platform, &caller, &slug, Need::Admin).await?;
    let user = member_id(&user)?;
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
    Ok(axum::Json(MemberRole { user_id: user, role_name: new_role.display().to_owned() }))
}

/// `DELETE /v1/organizations/{slug}/members/{user_id}`: removes a member (any member may
/// leave).
#[utoipa::path(
    delete,
    path = "/organizations/{slug}/members/{user_id}",
    operation_id = "v1-delete-organization-member",
    tag = "organizations",
    security(("bearer" = [])),
    params(
        ("slug" = String, Path, description = "The organization's slug"),
        ("user_id" = Uuid, Path, description = "The member's user id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 403, description = "Only owners and administrators remove others; only owners remove owners", body = ErrorBody),
        (status = 404, description = "No such organization or member", body = ErrorBody),
        (status = 409, description = "An organization keeps at least one owner", body = ErrorBody),
    )
)]
pub async fn remove_member(
    State(platform): State<Platform>,
    caller: Caller,
    Path((slug, user)): Path<(String, String)>,
) -> Result<http::StatusCode, Error> {
    let user = member_id(&user)?;
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
    Ok(http::StatusCode::NO_CONTENT)
}

/// An invitation to send.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Invite {
    /// Who.
    pub email: String,
    /// As what (`Developer` by default).
    #[serde(default)]
    pub role_name: Option<String>,
}

/// `POST /v1/organizations/{slug}/members/invitations`: mails an invitation through the auth
/// service's mailer. The token is also answered, so an administrator can pass it on.
#[utoipa::path(
    post,
    path = "/organizations/{slug}/members/invitations",
    operation_id = "v1-create-organization-invitation",
    tag = "organizations",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The organization's slug")),
    request_body = Invite,
    responses(
        (status = 201, description = "Invited (and mailed)", body = Invitation),
        (status = 400, description = "A malformed body, email or role", body = ErrorBody),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 403, description = "Only owners and administrators invite; only owners invite owners", body = ErrorBody),
        (status = 404, description = "No such organization of the caller's", body = ErrorBody),
    )
)]
pub async fn invite(
    State(platform): State<Platform>,
    caller: Caller,
    Path(slug): Path<String>,
    Body(req): Body<Invite>,
) -> Result<(http::StatusCode, axum::Json<Invitation>), Error> {
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
    let role_name = invited_role.display().to_owned();
    Ok((http::StatusCode::CREATED, axum::Json(Invitation { id, email, role_name, token })))
}

/// An invitation's token.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Accept {
    /// The token from the invitation.
    pub token: String,
}

/// `POST /v1/invitations/accept`: the caller (whose email the invitation names) joins.
#[utoipa::path(
    post,
    path = "/invitations/accept",
    operation_id = "v1-accept-invitation",
    tag = "organizations",
    security(("bearer" = [])),
    request_body = Accept,
    responses(
        (status = 200, description = "The caller joined the organization", body = Joined),
        (status = 400, description = "A malformed body", body = ErrorBody),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 404, description = "No live invitation with this token for the caller's email", body = ErrorBody),
    )
)]
pub async fn accept(
    State(platform): State<Platform>,
    caller: Caller,
    Body(req): Body<Accept>,
) -> Result<axum::Json<Joined>, Error> {
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
    Ok(axum::Json(Joined { organization_id: slug, role_name: role.display().to_owned() }))
}

/// The audit log's page size.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// How many entries (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// `GET /v1/organizations/{slug}/audit`: newest first (administrators).
#[utoipa::path(
    get,
    path = "/organizations/{slug}/audit",
    operation_id = "v1-list-organization-audit-log",
    tag = "organizations",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The organization's slug"), AuditQuery),
    responses(
        (status = 200, description = "The newest entries first", body = Vec<AuditEntry>),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 403, description = "Only owners and administrators read the audit log", body = ErrorBody),
        (status = 404, description = "No such organization of the caller's", body = ErrorBody),
    )
)]
pub async fn audit(
    State(platform): State<Platform>,
    caller: Caller,
    Path(slug): Path<String>,
    Params(q): Params<AuditQuery>,
) -> Result<axum::Json<Vec<AuditEntry>>, Error> {
    let (org, _) = organization_for(&platform, &caller, &slug, Need::Admin).await?;
    let rows = platform.store().audit_log(org.id, q.limit.unwrap_or(100).clamp(1, 1000)).await?;
    Ok(axum::Json(rows.into_iter().map(AuditEntry::from).collect()))
}
