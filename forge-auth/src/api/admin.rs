//! The admin API (service role only): users, their factors, `generate_link`, `invite`, and
//! Forge's local outbox.

use axum::Json;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Admin, JsonBody, RedirectQuery, normalize_email};
use crate::error::{Error, ErrorKind, Result};
use crate::links::{self, LinkSpec};
use crate::mail::MailKind;
use crate::model::{Factor, User, user_json};
use crate::password;
use crate::service::Auth;
use crate::store::{Deletion, Lookup, NewUser, UserChange, UserPage, UserQuery};
use crate::users::{self, Contact, merge_metadata, normalize_phone};

fn parse_id(id: &str) -> Result<Uuid> {
    id.parse().map_err(|_| Error::user_not_found())
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct ListQuery {
    page: Option<String>,
    per_page: Option<String>,
    filter: Option<String>,
    sort: Option<String>,
}

pub(crate) async fn list_users(
    State(auth): State<Auth>,
    Admin(project): Admin,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    let number = |v: &Option<String>, default: i64| -> Result<i64> {
        match v.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(default),
            Some(s) => s.parse::<i64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                Error::validation(format!("Bad Pagination Parameters: {s:?} is not a positive integer"))
            }),
        }
    };
    let page = number(&q.page, 1)?;
    let per_page = number(&q.per_page, 50)?;
    let descending = match q.sort.as_deref().map(str::trim) {
        None | Some("") => true,
        Some(s) => match s.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["created_at"] | ["created_at", "desc"] => true,
            ["created_at", "asc"] => false,
            _ => return Err(Error::validation(format!("Bad Sort Parameters: {s}"))),
        },
    };
    let filter = q.filter.clone().filter(|f| !f.is_empty());
    let pool = project.db().pool();
    let query = UserQuery {
        filter: filter.clone(),
        page: page.unsigned_abs(),
        per_page: per_page.unsigned_abs(),
        newest_first: descending,
    };
    let UserPage { users, total } = auth.store().list(&mut *pool.acquire().await?, &query).await?;
    let total = i64::try_from(total).unwrap_or(i64::MAX);
    let mut out = Vec::with_capacity(users.len());
    let mut conn = pool.acquire().await?;
    for u in &users {
        out.push(user_json(&auth, &mut conn, u).await?);
    }
    let mut res = Json(json!({ "users": out, "aud": "authenticated" })).into_response();
    let last = if total == 0 { 0 } else { (total + per_page - 1) / per_page };
    let link_for = |p: i64| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("page", &p.to_string()).append_pair("per_page", &per_page.to_string());
        if let Some(f) = &filter {
            query.append_pair("filter", f);
        }
        if let Some(s) = q.sort.as_deref().filter(|s| !s.is_empty()) {
            query.append_pair("sort", s);
        }
        format!("<{}?{}>", uri.path(), query.finish())
    };
    let mut links = Vec::new();
    if page < last {
        links.push(format!("{}; rel=\"next\"", link_for(page + 1)));
    }
    links.push(format!("{}; rel=\"last\"", link_for(last)));
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&links.join(", ")) {
        headers.insert(http::header::LINK, v);
    }
    headers.insert("x-total-count", HeaderValue::from(total));
    Ok(res)
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct AdminUserBody {
    id: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    password: Option<String>,
    password_hash: Option<String>,
    email_confirm: Option<bool>,
    phone_confirm: Option<bool>,
    user_metadata: Option<Map<String, Value>>,
    app_metadata: Option<Map<String, Value>>,
    ban_duration: Option<String>,
    role: Option<String>,
}

/// The longest ban: 100 years.
const MAX_BAN_SECONDS: f64 = 100.0 * 365.25 * 86400.0;

/// Parses a Go-style duration (`24h`, `1h30m`, `90s`, `500ms`); `none` is `None`.
fn parse_ban(s: &str) -> Result<Option<time::Duration>> {
    let s = s.trim();
    if s == "none" {
        return Ok(None);
    }
    let bad = || Error::validation(format!("invalid format for ban duration: {s:?}"));
    let mut total = time::Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').ok_or_else(bad)?;
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return Err(bad()),
        };
        let part = value * seconds;
        if !part.is_finite() || part > MAX_BAN_SECONDS {
            return Err(bad());
        }
        total += time::Duration::seconds_f64(part);
        rest = &rest[unit_len..];
    }
    if total.as_seconds_f64() > MAX_BAN_SECONDS {
        return Err(bad());
    }
    Ok(Some(total))
}

fn check_password_hash(h: &str) -> Result<()> {
    if h.starts_with("$argon2") || h.starts_with("$2a$") || h.starts_with("$2b$") || h.starts_with("$2y$") {
        Ok(())
    } else {
        Err(Error::validation("Invalid password hash: only argon2 and bcrypt hashes are supported"))
    }
}

async fn hash_password(auth: &Auth, password: &str) -> Result<String> {
    auth.config().password_policy().check(password).map_err(Error::weak_password)?;
    let p = password.to_owned();
    Ok(tokio::task::spawn_blocking(move || password::hash(&p)).await.map_err(Error::internal)??)
}

pub(crate) async fn create_user(
    State(auth): State<Auth>,
    Admin(project): Admin,
    JsonBody(body): JsonBody<AdminUserBody>,
) -> Result<Json<Value>> {
    let email = body.email.as_deref().filter(|e| !e.is_empty()).map(normalize_email).transpose()?;
    let phone = body.phone.as_deref().filter(|p| !p.is_empty()).map(normalize_phone).transpose()?;
    let id = body
        .id
        .as_deref()
        .map(|i| i.parse::<Uuid>().map_err(|_| Error::validation("id must be a UUID")))
        .transpose()?;
    let password_hash = match (&body.password, &body.password_hash) {
        (Some(_), Some(_)) => return Err(Error::validation("Only a password or a password hash should be provided")),
        (Some(p), None) => Some(hash_password(&auth, p).await?),
        (None, Some(h)) => {
            check_password_hash(h)?;
            Some(h.clone())
        }
        (None, None) => None,
    };
    let banned_until = match body.ban_duration.as_deref() {
        Some(b) => parse_ban(b)?.map(|d| OffsetDateTime::now_utc() + d),
        None => None,
    };
    let mut app_metadata = Map::new();
    if let Some(m) = body.app_metadata {
        merge_metadata(&mut app_metadata, m);
    }
    let anonymous = email.is_none() && phone.is_none();
    let new = NewUser {
        id,
        email,
        phone,
        password_hash,
        user_metadata: body.user_metadata.unwrap_or_default(),
        app_metadata,
        email_confirmed: body.email_confirm.unwrap_or(false),
        phone_confirmed: body.phone_confirm.unwrap_or(false),
        anonymous,
        invited: false,
        role: body.role,
        banned_until,
        identity: None,
    };
    let pool = project.db().pool();
    let mut tx = pool.begin().await?;
    let user = auth.store().create(&mut tx, new).await?;
    tx.commit().await?;
    Ok(Json(user_json(&auth, &mut *pool.acquire().await?, &user).await?))
}

pub(crate) async fn get_user(
    State(auth): State<Auth>,
    Admin(project): Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let pool = project.db().pool();
    let user = find_user(&auth, pool, parse_id(&id)?).await?;
    Ok(Json(user_json(&auth, &mut *pool.acquire().await?, &user).await?))
}

/// A user by id, or 404 `user_not_found`.
async fn find_user(auth: &Auth, pool: &sqlx::PgPool, id: Uuid) -> Result<User> {
    auth.store().find(&mut *pool.acquire().await?, Lookup::Id(id)).await?.ok_or_else(Error::user_not_found)
}

pub(crate) async fn update_user(
    State(auth): State<Auth>,
    Admin(project): Admin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<AdminUserBody>,
) -> Result<Json<Value>> {
    let pool = project.db().pool();
    let mut tx = pool.begin().await?;
    let store = auth.store();
    let user = store.find(&mut tx, Lookup::Locked(parse_id(&id)?)).await?.ok_or_else(Error::user_not_found)?;
    let mut change = UserChange::default();
    if let Some(email) = body.email.as_deref().filter(|e| !e.is_empty()) {
        let email = normalize_email(email)?;
        if user.email.as_deref() != Some(email.as_str()) {
            users::ensure_free(&auth, &mut tx, Contact::Email(&email), Some(user.id)).await?;
            users::set_identity(&auth, &mut tx, user.id, Contact::Email(&email), body.email_confirm.unwrap_or(false))
                .await?;
            change.email = Some(Some(email));
            change.anonymous = Some(false);
        }
    }
    if let Some(phone) = body.phone.as_deref().filter(|p| !p.is_empty()) {
        let phone = normalize_phone(phone)?;
        if user.phone.as_deref() != Some(phone.as_str()) {
            users::ensure_free(&auth, &mut tx, Contact::Phone(&phone), Some(user.id)).await?;
            users::set_identity(&auth, &mut tx, user.id, Contact::Phone(&phone), body.phone_confirm.unwrap_or(false))
                .await?;
            change.phone = Some(Some(phone));
            change.anonymous = Some(false);
        }
    }
    change.password_hash = match (&body.password, &body.password_hash) {
        (Some(_), Some(_)) => return Err(Error::validation("Only a password or a password hash should be provided")),
        (Some(p), None) => Some(hash_password(&auth, p).await?),
        (None, Some(h)) => {
            check_password_hash(h)?;
            Some(h.clone())
        }
        (None, None) => None,
    };
    if let Some(true) = body.email_confirm {
        change.email_confirmed = Some(true);
    }
    if let Some(true) = body.phone_confirm {
        change.phone_confirmed = Some(true);
    }
    if let Some(patch) = body.user_metadata {
        let mut meta = user.user_metadata();
        merge_metadata(&mut meta, patch);
        change.user_metadata = Some(meta);
    }
    if let Some(patch) = body.app_metadata {
        let mut meta = user.app_metadata();
        merge_metadata(&mut meta, patch);
        change.app_metadata = Some(meta);
    }
    if let Some(ban) = body.ban_duration.as_deref() {
        let until = parse_ban(ban)?.map(|d| OffsetDateTime::now_utc() + d);
        change.banned_until = Some(until);
        if until.is_some() {
            sqlx::query("delete from auth.sessions where user_id = $1").bind(user.id).execute(&mut *tx).await?;
        }
    }
    change.role = body.role.filter(|r| !r.is_empty());
    let user = store.update(&mut tx, user.id, change).await?;
    tx.commit().await?;
    Ok(Json(user_json(&auth, &mut *pool.acquire().await?, &user).await?))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct DeleteBody {
    should_soft_delete: bool,
}

pub(crate) async fn delete_user(
    State(auth): State<Auth>,
    Admin(project): Admin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DeleteBody>,
) -> Result<Json<Value>> {
    let pool = project.db().pool();
    let id = parse_id(&id)?;
    let mut tx = pool.begin().await?;
    auth.store().find(&mut tx, Lookup::Locked(id)).await?.ok_or_else(Error::user_not_found)?;
    if body.should_soft_delete {
        auth.store().delete(&mut tx, id, Deletion::Soft).await?;
        sqlx::query("delete from auth.sessions where user_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("delete from auth.mfa_factors where user_id = $1").bind(id).execute(&mut *tx).await?;
    } else {
        auth.store().delete(&mut tx, id, Deletion::Hard).await?;
    }
    tx.commit().await?;
    Ok(Json(json!({})))
}

pub(crate) async fn list_factors(
    State(auth): State<Auth>,
    Admin(project): Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let pool = project.db().pool();
    let user = find_user(&auth, pool, parse_id(&id)?).await?;
    let factors = Factor::of_user(pool, user.id).await?;
    Ok(Json(Value::Array(factors.iter().map(Factor::to_json).collect())))
}

async fn find_factor(pool: &sqlx::PgPool, user: &str, factor: &str) -> Result<Factor> {
    let user = parse_id(user)?;
    let not_found = || Error::new(ErrorKind::MfaFactorNotFound, "Factor not found");
    let fid: Uuid = factor.parse().map_err(|_| not_found())?;
    Factor::of_user(pool, user).await?.into_iter().find(|f| f.id == fid).ok_or_else(not_found)
}

pub(crate) async fn delete_factor(
    Admin(project): Admin,
    Path((id, factor_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let pool = project.db().pool();
    let factor = find_factor(pool, &id, &factor_id).await?;
    sqlx::query("delete from auth.mfa_factors where id = $1").bind(factor.id).execute(pool).await?;
    Ok(Json(json!({ "id": factor.id })))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct FactorBody {
    friendly_name: Option<String>,
}

pub(crate) async fn update_factor(
    Admin(project): Admin,
    Path((id, factor_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<FactorBody>,
) -> Result<Json<Value>> {
    let pool = project.db().pool();
    let factor = find_factor(pool, &id, &factor_id).await?;
    if let Some(name) = body.friendly_name {
        sqlx::query("update auth.mfa_factors set friendly_name = $2, updated_at = now() where id = $1")
            .bind(factor.id)
            .bind(name)
            .execute(pool)
            .await?;
    }
    let factor = find_factor(pool, &id, &factor_id).await?;
    Ok(Json(factor.to_json()))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct LinkBody {
    #[serde(rename = "type")]
    kind: String,
    email: Option<String>,
    password: Option<String>,
    new_email: Option<String>,
    data: Option<Map<String, Value>>,
    #[serde(rename = "redirectTo")]
    redirect_to_body: Option<String>,
}

pub(crate) async fn generate_link(
    State(auth): State<Auth>,
    Admin(project): Admin,
    Query(q): Query<RedirectQuery>,
    JsonBody(body): JsonBody<LinkBody>,
) -> Result<Json<Value>> {
    let link_type = LinkType::parse(&body.kind)?;
    let email = normalize_email(body.email.as_deref().unwrap_or_default())?;
    let redirect_to = auth.redirect_target(&project, q.redirect_to.as_deref().or(body.redirect_to_body.as_deref()));
    let pool = project.db().pool();
    let mut tx = pool.begin().await?;
    let (user, address) = link_user(&auth, &mut tx, link_type, email, &body).await?;
    let spec =
        LinkSpec { kind: link_type.mail_kind(), address, redirect_to: redirect_to.clone(), pkce: None, reset: false };
    let link = links::issue(&auth, &project, &mut tx, &user, &spec).await?;
    let user = auth.store().find(&mut tx, Lookup::Id(user.id)).await?.ok_or_else(Error::user_not_found)?;
    tx.commit().await?;
    let mut out = user_json(&auth, &mut *pool.acquire().await?, &user).await?;
    out["action_link"] = json!(link.action_link);
    out["email_otp"] = json!(link.otp);
    out["hashed_token"] = json!(link.token_hash);
    out["verification_type"] = json!(spec.verify_type().as_str());
    out["redirect_to"] = json!(redirect_to);
    Ok(Json(out))
}

/// The link types of `generateLink`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkType {
    Signup,
    Invite,
    MagicLink,
    Recovery,
    /// `email_change_current` and `email_change_new`: both go to the new address.
    EmailChange,
}

impl LinkType {
    fn parse(kind: &str) -> Result<Self> {
        Ok(match kind {
            "signup" => Self::Signup,
            "invite" => Self::Invite,
            "magiclink" => Self::MagicLink,
            "recovery" => Self::Recovery,
            "email_change_current" | "email_change_new" => Self::EmailChange,
            other => return Err(Error::validation(format!("Invalid link type: {other:?}"))),
        })
    }

    fn mail_kind(self) -> MailKind {
        match self {
            Self::Signup => MailKind::Confirmation,
            Self::Invite => MailKind::Invite,
            Self::MagicLink => MailKind::MagicLink,
            Self::Recovery => MailKind::Recovery,
            Self::EmailChange => MailKind::EmailChange,
        }
    }
}

/// The user a link of `link_type` is for (created when the type makes one) and the address
/// it goes to.
async fn link_user(
    auth: &Auth,
    tx: &mut sqlx::PgConnection,
    link_type: LinkType,
    email: String,
    body: &LinkBody,
) -> Result<(User, String)> {
    let existing = auth.store().find(tx, Lookup::Email(&email)).await?;
    let metadata = body.data.clone().unwrap_or_default();
    let user = match (link_type, existing) {
        (LinkType::Signup, existing) => {
            let password = body
                .password
                .as_deref()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| Error::validation("Signup requires a valid password"))?;
            let hash = hash_password(auth, password).await?;
            match existing {
                Some(u) if u.email_confirmed() => return Err(Error::email_exists()),
                Some(u) => u,
                None => {
                    let new = NewUser {
                        email: Some(email.clone()),
                        password_hash: Some(hash),
                        user_metadata: metadata,
                        ..NewUser::default()
                    };
                    auth.store().create(tx, new).await?
                }
            }
        }
        (LinkType::Invite, Some(u)) if u.email_confirmed() => return Err(Error::email_exists()),
        (LinkType::Invite | LinkType::MagicLink, Some(u)) => u,
        (LinkType::Invite, None) => {
            let new =
                NewUser { email: Some(email.clone()), user_metadata: metadata, invited: true, ..NewUser::default() };
            auth.store().create(tx, new).await?
        }
        (LinkType::MagicLink, None) => {
            let new = NewUser { email: Some(email.clone()), user_metadata: metadata, ..NewUser::default() };
            auth.store().create(tx, new).await?
        }
        (LinkType::Recovery, existing) => existing.ok_or_else(Error::user_not_found)?,
        (LinkType::EmailChange, existing) => {
            let user = existing.ok_or_else(Error::user_not_found)?;
            let new_email = normalize_email(body.new_email.as_deref().unwrap_or_default())?;
            users::ensure_free(auth, tx, Contact::Email(&new_email), None).await?;
            let change = UserChange { email_change: Some(new_email.clone()), ..UserChange::default() };
            let user = auth.store().update(tx, user.id, change).await?;
            return Ok((user, new_email));
        }
    };
    Ok((user, email))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct InviteBody {
    email: Option<String>,
    data: Option<Map<String, Value>>,
}

pub(crate) async fn invite(
    State(auth): State<Auth>,
    Admin(project): Admin,
    Query(q): Query<RedirectQuery>,
    JsonBody(body): JsonBody<InviteBody>,
) -> Result<Json<Value>> {
    let email = normalize_email(body.email.as_deref().unwrap_or_default())?;
    let pool = project.db().pool();
    let mut tx = pool.begin().await?;
    let user = match auth.store().find(&mut tx, Lookup::Email(&email)).await? {
        Some(u) if u.email_confirmed() => {
            return Err(Error::email_exists());
        }
        Some(u) => u,
        None => {
            let new = NewUser {
                email: Some(email.clone()),
                user_metadata: body.data.unwrap_or_default(),
                invited: true,
                ..NewUser::default()
            };
            auth.store().create(&mut tx, new).await?
        }
    };
    let spec = LinkSpec {
        kind: MailKind::Invite,
        address: email,
        redirect_to: auth.redirect_target(&project, q.redirect_to.as_deref()),
        pkce: None,
        reset: false,
    };
    let mail = links::prepare(&auth, &project, &mut tx, &user, &spec).await?;
    let user = auth.store().update(&mut tx, user.id, UserChange { invited: true, ..UserChange::default() }).await?;
    tx.commit().await?;
    links::deliver(&auth, mail).await?;
    Ok(Json(user_json(&auth, &mut *pool.acquire().await?, &user).await?))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct OutboxQuery {
    email: Option<String>,
    phone: Option<String>,
}

/// Forge's development outboxes: the mails kept when no SMTP server is configured, and the
/// texts kept when no SMS provider is. `?email=` and `?phone=` filter by recipient.
pub(crate) async fn outbox(State(auth): State<Auth>, _admin: Admin, Query(q): Query<OutboxQuery>) -> Result<Response> {
    if auth.outbox().is_none() && auth.sms_outbox().is_none() {
        return Ok((
            StatusCode::NOT_FOUND,
            Json(json!({ "code": "not_found", "message": "No outbox: mail and texts go to their providers" })),
        )
            .into_response());
    }
    let to = q.email.as_deref().map(str::to_lowercase);
    let messages = auth.outbox().map(|o| o.messages(to.as_deref())).unwrap_or_default();
    let texts = match &q.phone {
        Some(p) => {
            let p = normalize_phone(p)?;
            auth.sms_outbox().map(|o| o.messages(Some(&p))).unwrap_or_default()
        }
        None => auth.sms_outbox().map(|o| o.messages(None)).unwrap_or_default(),
    };
    Ok(Json(json!({ "messages": messages, "texts": texts })).into_response())
}

#[cfg(test)]
mod tests {
    use super::parse_ban;

    #[test]
    fn ban_durations_follow_go_and_refuse_absurd_values() {
        assert_eq!(parse_ban("none").expect("none"), None);
        assert_eq!(parse_ban("1h30m").expect("ok"), Some(time::Duration::minutes(90)));
        assert_eq!(parse_ban("500ms").expect("ok"), Some(time::Duration::milliseconds(500)));
        for bad in ["", "1d", "h", "9999999999999h", "1e400h", "10", "-1h"] {
            assert!(parse_ban(bad).is_err(), "{bad:?}");
        }
    }
}
