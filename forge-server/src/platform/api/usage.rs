//! `GET /v1/projects/{ref}/usage`: a project's metered usage over a period, by metric and
//! dimension (counters summed, gauges at their largest), from the hourly buckets every node
//! writes to. Usage still in a node's memory (at most one flush interval) is not in it yet.

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::{ErrorBody, Need, Params, project_for, rfc3339};
use crate::platform::Platform;
use crate::platform::error::Error;
use crate::platform::usage;
use crate::platform::users::Caller;

/// The period.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Period {
    /// The start (RFC 3339; default: the start of this month, UTC).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub from: Option<OffsetDateTime>,
    /// The end, exclusive (RFC 3339; default: now).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub to: Option<OffsetDateTime>,
}

/// A project's usage over a period.
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    /// The project's ref.
    #[serde(rename = "ref")]
    pub reference: String,
    /// The period's start.
    #[schema(format = DateTime)]
    pub from: String,
    /// The period's end, exclusive.
    #[schema(format = DateTime)]
    pub to: String,
    /// By metric and dimension.
    pub usage: Vec<UsageEntry>,
}

/// One metric and dimension of a project's usage over a period: counters summed over the
/// period's hours, gauges their largest hourly value.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageEntry {
    /// The metric, e.g. `requests` or `storage_bytes`.
    pub metric: String,
    /// The dimension, e.g. `rest:2xx`; `""` when the metric has none.
    pub dimension: String,
    /// `counter` or `gauge`.
    pub kind: String,
    /// The total (counter) or peak (gauge).
    pub value: i64,
}

impl From<usage::UsageRow> for UsageEntry {
    fn from(row: usage::UsageRow) -> Self {
        let usage::UsageRow { metric, dimension, kind, value } = row;
        UsageEntry { metric, dimension, kind, value }
    }
}

/// The project's usage.
#[utoipa::path(
    get,
    path = "/projects/{ref}/usage",
    operation_id = "v1-get-project-usage",
    tag = "projects",
    security(("bearer" = [])),
    params(("ref" = String, Path, description = "The project's ref"), Period),
    responses(
        (status = 200, description = "The project's usage in the period", body = Usage),
        (status = 400, description = "`from` is not before `to`", body = ErrorBody),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
    )
)]
pub async fn get(
    State(platform): State<Platform>,
    caller: Caller,
    Path(reference): Path<String>,
    Params(period): Params<Period>,
) -> Result<axum::Json<Usage>, Error> {
    let (row, _) = project_for(&platform, &caller, &reference, Need::Read).await?;
    let now = OffsetDateTime::now_utc();
    let month = now.replace_day(1).map(|d| d.replace_time(time::Time::MIDNIGHT)).unwrap_or(now);
    let (from, to) = (period.from.unwrap_or(month), period.to.unwrap_or(now + time::Duration::hours(1)));
    if from >= to {
        return Err(Error::invalid("from must be before to"));
    }
    let reference = forge_core::ProjectRef::new(&row.reference).map_err(|_| Error::not_found("Project"))?;
    let rows = usage::usage(platform.store().pool(), &reference, from, to).await?;
    Ok(axum::Json(Usage {
        reference: row.reference,
        from: rfc3339(from),
        to: rfc3339(to),
        usage: rows.into_iter().map(UsageEntry::from).collect(),
    }))
}
