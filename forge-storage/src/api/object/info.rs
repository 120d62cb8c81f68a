//! Object info (`GET /object/info/...`): the row, authenticated or public.

use axum::Json;
use serde_json::Value;

use super::access::{AccessMode, ObjectRead};
use crate::error::Result;
use crate::rows::INFO_JSON;

/// `GET /object/info/{authenticated,public}/{bucket}/{path}` and `GET /object/info/{bucket}/{path}`.
pub(crate) async fn info<M: AccessMode>(read: ObjectRead<M>) -> Result<Json<Value>> {
    read.row(INFO_JSON).await.map(Json)
}
