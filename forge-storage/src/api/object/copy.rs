//! Copying an object: a new row naming the same stored version.

use axum::{Extension, Json};
use forge_core::Project;
use forge_core::rls::RequestContext;
use http::HeaderMap;
use object_store::ObjectStoreExt as _;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::move_object::MoveBody;
use super::upload::{Mode, NewVersion, check_fits, owner_of, point_at_version, upsert};
use crate::api::JsonBody;
use crate::error::{Error, Result};
use crate::rows::{self, Reader};
use crate::service::Storage;

pub(crate) async fn copy(
    Extension(storage): Extension<Storage>,
    project: Project,
    ctx: RequestContext,
    headers: HeaderMap,
    JsonBody(body): JsonBody<MoveBody>,
) -> Result<Json<Value>> {
    let destination = body.destination(&project).await?;
    let source =
        rows::object_row(&project, Reader::Caller(&ctx), rows::SOURCE_JSON, &body.bucket_id, &body.source_key).await?;
    let from = source["version"].as_str().ok_or_else(Error::no_such_key)?;
    check_fits(&destination, &source["metadata"])?;
    let version = Uuid::now_v7().to_string();
    let store = storage.store().as_ref();
    let target = Storage::blob_path(&project, &version);
    store.copy(&Storage::blob_path(&project, from), &target).await?;
    let mut metadata = source["metadata"].clone();
    metadata["eTag"] = json!(format!("\"{version}\""));
    metadata["lastModified"] = json!(rows::timestamp_text(OffsetDateTime::now_utc()));
    let owner = owner_of(&ctx);
    let mode = Mode::Create { upsert: upsert(&headers) };
    let new = NewVersion { version, metadata, user_metadata: Some(source["user_metadata"].clone()) };
    let to_bucket = &destination.id;
    let id =
        point_at_version(&project, &ctx, store, mode, to_bucket, &body.destination_key, owner.as_deref(), new).await?;
    Ok(Json(json!({ "Id": id, "Key": format!("{to_bucket}/{}", body.destination_key) })))
}
