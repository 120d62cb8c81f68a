//! Collecting what uploads left behind: expired resumable uploads, blobs that no object row
//! names (a process that died between storing an upload's bytes and recording them), and
//! resumable-upload parts whose upload is gone.

use std::time::Duration;

use forge_core::{ForgeError, Project};
use futures_util::TryStreamExt as _;
use object_store::ObjectMeta;
use object_store::path::Path;
use uuid::Uuid;

use crate::api::tus;
use crate::blob;
use crate::error::Result;
use crate::service::Storage;

/// How old a blob must be before a sweep may take it. Younger ones may belong to an upload
/// that is being recorded right now; a resumable upload's parts may be up to an hour old
/// (its expiry) when they are joined into its version.
pub const SWEEP_GRACE: Duration = Duration::from_secs(2 * 3600);

/// Versions or uploads looked up per statement.
const BATCH: usize = 1000;

/// What a sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Resumable uploads past their expiry (with their parts).
    pub expired_uploads: usize,
    /// Blobs that no object row names.
    pub orphan_blobs: usize,
    /// Resumable uploads' part folders with no upload.
    pub orphan_uploads: usize,
}

impl Storage {
    /// Removes what `project`'s uploads left behind: expired resumable uploads, blobs older
    /// than [`SWEEP_GRACE`] that no object row names, and resumable-upload parts whose
    /// upload is gone. Safe at any time and from several instances at once; forge-server
    /// runs it every hour. It lists the project's blobs, so its cost grows with them.
    pub async fn sweep(&self, project: &Project) -> Result<Swept> {
        self.sweep_older_than(project, SWEEP_GRACE).await
    }

    /// [`Storage::sweep`] with another grace period.
    pub async fn sweep_older_than(&self, project: &Project, grace: Duration) -> Result<Swept> {
        let expired_uploads = tus::sweep_expired(self, project).await?;
        let cutoff =
            time::OffsetDateTime::now_utc().unix_timestamp() - i64::try_from(grace.as_secs()).unwrap_or(i64::MAX / 2);
        // A version's id tells when it was made (versions are time-ordered UUIDs); a copy on a
        // local disk is a hard link that keeps its source's time, so the file's time is only
        // a fallback, for versions made before ids were time-ordered.
        let old = |meta: &ObjectMeta| {
            let made = meta
                .location
                .filename()
                .and_then(|name| Uuid::parse_str(name).ok())
                .and_then(|id| id.get_timestamp())
                .and_then(|t| i64::try_from(t.to_unix().0).ok());
            made.unwrap_or_else(|| meta.last_modified.timestamp()) <= cutoff
        };
        let store = self.store().as_ref();
        let root = Path::from(project.reference().as_str());

        // Versions: `<ref>/<version>`.
        let listed = store.list_with_delimiter(Some(&root)).await?;
        let versions: Vec<String> =
            listed.objects.iter().filter(|m| old(m)).filter_map(|m| m.location.filename().map(str::to_owned)).collect();
        let unnamed = without_rows(
            project,
            "select v from unnest($1::text[]) as v where not exists (select 1 from storage.objects where version = v)",
            &versions,
        )
        .await?;
        let orphan_blobs = unnamed.len();
        blob::forget(store, unnamed.iter().map(|v| Storage::blob_path(project, v)).collect()).await;

        // Resumable uploads' parts: `<ref>/tus/<id>/<offset>-<lease>`. An upload's row is written
        // before any of its parts, so parts without a row are left over.
        let uploads = store.list_with_delimiter(Some(&root.clone().join("tus"))).await?;
        let ids: Vec<String> = uploads
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().filter(|id| Uuid::parse_str(id).is_ok()).map(str::to_owned))
            .collect();
        let gone = without_rows(
            project,
            "select v from unnest($1::text[]) as v \
             where not exists (select 1 from storage.resumable_uploads where id = v::uuid)",
            &ids,
        )
        .await?;
        let mut orphan_uploads = 0;
        for id in gone.iter().filter_map(|id| Uuid::parse_str(id).ok()) {
            let parts: Vec<ObjectMeta> = store.list(Some(&tus::part_prefix(project, id))).try_collect().await?;
            // (A local disk may keep the emptied folder of an upload swept before.)
            if !parts.is_empty() && parts.iter().all(old) {
                orphan_uploads += 1;
                blob::forget(store, parts.into_iter().map(|m| m.location).collect()).await;
            }
        }
        Ok(Swept { expired_uploads, orphan_blobs, orphan_uploads })
    }
}

/// Those of `keys` that `missing` (a statement over `unnest($1::text[]) as v` returning the
/// keys no row has) returns, looked up a batch at a time.
async fn without_rows(project: &Project, missing: &'static str, keys: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for batch in keys.chunks(BATCH) {
        let found: Vec<String> =
            sqlx::query_scalar(missing).bind(batch).fetch_all(project.db().pool()).await.map_err(ForgeError::from)?;
        out.extend(found);
    }
    Ok(out)
}
