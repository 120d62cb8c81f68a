//! Realtime's REST endpoints: broadcasts sent over HTTP (realtime-js falls back to them when a
//! channel is not joined, and servers use them), answered with exactly 202.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use forge_core::{Principal, Project};
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::Value;

use crate::authz;
use crate::error::{Error, ErrorKind};
use crate::protocol::Body;
use crate::service::Realtime;
use crate::tenant::Tenant;

#[derive(Debug, Deserialize)]
struct Batch {
    messages: Vec<Outgoing>,
}

#[derive(Debug, Deserialize)]
struct Outgoing {
    topic: String,
    event: String,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    private: bool,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidBody, message.into())
}

/// `POST /api/broadcast`: `{messages: [{topic, event, payload, private}]}`.
pub(crate) async fn broadcast(
    Extension(realtime): Extension<Realtime>,
    project: Project,
    principal: Principal,
    body: Bytes,
) -> Result<Response, Error> {
    let batch: Batch = serde_json::from_slice(&body).map_err(|e| invalid(format!("Invalid broadcast body: {e}")))?;
    let tenant = realtime.tenant(&project).await?;
    let mut checked = Vec::with_capacity(batch.messages.len());
    for m in batch.messages {
        if m.topic.is_empty() || m.event.is_empty() {
            return Err(invalid("Every message needs a topic and an event"));
        }
        let body = Body::Json(m.payload);
        check(&tenant, &body)?;
        let topic = m.topic.strip_prefix("realtime:").map(str::to_owned).unwrap_or(m.topic);
        checked.push((topic, m.event, body, m.private));
    }
    count(&tenant, checked.len())?;
    for (topic, event, body, private) in checked {
        send(&tenant, &principal, &topic, &event, body, private).await;
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct SendQuery {
    #[serde(default)]
    private: Option<String>,
}

/// `POST /api/broadcast/{topic}/events/{event}` (`httpSend`): the body is the payload, JSON
/// or, as `application/octet-stream`, raw bytes.
pub(crate) async fn send_one(
    Extension(realtime): Extension<Realtime>,
    project: Project,
    principal: Principal,
    Path((topic, event)): Path<(String, String)>,
    Query(query): Query<SendQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let binary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/octet-stream"));
    let body = if binary {
        Body::Binary(body)
    } else if body.is_empty() {
        Body::Json(Value::Object(Default::default()))
    } else {
        Body::Json(serde_json::from_slice(&body).map_err(|e| invalid(format!("Invalid JSON payload: {e}")))?)
    };
    let private = matches!(query.private.as_deref(), Some("true" | "1"));
    let topic = topic.strip_prefix("realtime:").unwrap_or(&topic).to_owned();
    if topic.is_empty() || event.is_empty() {
        return Err(invalid("A broadcast needs a topic and an event"));
    }
    let tenant = realtime.tenant(&project).await?;
    check(&tenant, &body)?;
    count(&tenant, 1)?;
    send(&tenant, &principal, &topic, &event, body, private).await;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Checks a message as Supabase's batch changeset does: its payload within the limit.
fn check(tenant: &Tenant, body: &Body) -> Result<(), Error> {
    let size = match body {
        Body::Json(v) => v.to_string().len(),
        Body::Binary(b) => b.len(),
    };
    if size > tenant.realtime.config().max_payload_bytes {
        return Err(invalid("Payload size exceeds tenant limit"));
    }
    Ok(())
}

/// Counts `n` messages against the project's rate (429 when over).
fn count(tenant: &Tenant, n: usize) -> Result<(), Error> {
    let limit = tenant.realtime.config().max_events_per_second;
    for _ in 0..n {
        if !tenant.events.allow(limit) {
            return Err(Error::new(ErrorKind::TooManyMessages, "You have exceeded your rate limit"));
        }
    }
    Ok(())
}

/// Sends one checked message. On a private channel the caller's write policies decide, and
/// a message they refuse is dropped (the answer is still 202, as Supabase's); the service
/// role sends anywhere.
async fn send(tenant: &Tenant, principal: &Principal, topic: &str, event: &str, body: Body, private: bool) {
    if private && !matches!(principal, Principal::Service(_)) {
        let pool = tenant.project.db().pool();
        let allowed = authz::write_access(pool, topic, principal, false, tenant.realtime.config().check_timeout)
            .await
            .map(|a| a.broadcast)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "realtime: checking a private channel's write policies failed");
                false
            });
        if !allowed {
            tracing::debug!(topic, "realtime: a REST broadcast the channel's policies refuse is dropped");
            return;
        }
    }
    tenant.broadcast(&format!("realtime:{topic}"), event, &body, private, None);
}
