//! Collecting what storage uploads left behind: at start-up, what a previous run cut short;
//! then every hour, expired resumable uploads and blobs no row names.
//!
//! A process killed mid-upload leaves bytes no row will ever name: a whole blob (killed
//! between storing and recording) or, on the local disk, a staging file `<name>#<n>` where an
//! interrupted multipart write keeps what arrived (the store's listings never show those).
//! With the embedded cluster, this server is the only one writing the project's files, so at
//! start-up anything made before it started is left over and goes at once. With an external
//! database other servers may be uploading, so start-up keeps to [`SWEEP_GRACE`] like the
//! hourly sweep. (On S3, an interrupted multipart upload is the bucket's to expire: give it
//! an `AbortIncompleteMultipartUpload` lifecycle rule.)

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use forge_core::Project;
use forge_storage::{SWEEP_GRACE, Storage, Swept};

/// How often the sweep runs after start-up.
const EVERY: Duration = Duration::from_secs(3600);

/// What the sweeper works on.
#[derive(Debug, Clone)]
pub struct Sweeper {
    /// The storage service.
    pub storage: Storage,
    /// The project whose files it sweeps.
    pub project: Project,
    /// The local store's root, when files are on the local disk.
    pub local: Option<PathBuf>,
}

impl Sweeper {
    /// Sweeps what was made before `started` (or, when `shared`, what is older than
    /// [`SWEEP_GRACE`]) and returns; call before serving, so that no upload of this run is
    /// in flight yet.
    pub async fn at_start(&self, started: std::time::Instant, shared: bool) {
        let grace = if shared { SWEEP_GRACE } else { started.elapsed() };
        self.sweep(grace, "what a previous run left").await;
    }

    /// Sweeps every hour, forever.
    pub async fn every_hour(self) {
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + EVERY, EVERY);
        loop {
            every.tick().await;
            self.sweep(SWEEP_GRACE, "storage swept").await;
        }
    }

    async fn sweep(&self, grace: Duration, what: &'static str) {
        let swept = self.storage.sweep_older_than(&self.project, grace).await;
        let staged = match self.local.clone() {
            Some(root) => tokio::task::spawn_blocking(move || remove_staged(&root, grace))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e))),
            None => Ok(0),
        };
        match (swept, staged) {
            (Ok(swept), Ok(0)) if swept == Swept::default() => {}
            (Ok(swept), Ok(staged)) => tracing::info!(
                expired_uploads = swept.expired_uploads,
                orphan_blobs = swept.orphan_blobs,
                orphan_uploads = swept.orphan_uploads,
                staged_files = staged,
                "{what}"
            ),
            (Err(e), _) => tracing::warn!(error = %e, "sweeping storage failed"),
            (_, Err(e)) => tracing::warn!(error = %e, "removing interrupted local writes failed"),
        }
    }
}

/// Whether a file name is a local store's staging file: `<name>#<digits>`.
fn is_staged(name: &str) -> bool {
    name.rsplit_once('#').is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Deletes the staging files under `root` last written more than `grace` ago; how many.
fn remove_staged(root: &Path, grace: Duration) -> std::io::Result<usize> {
    let cutoff = SystemTime::now().checked_sub(grace).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut removed = 0;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file()
                && entry.file_name().to_str().is_some_and(is_staged)
                && entry.metadata()?.modified()? < cutoff
            {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_files_are_named_with_a_number_after_a_hash() {
        assert!(is_staged("0190a1b2-0000-7000-8000-000000000000#1"));
        assert!(is_staged("x#12"));
        assert!(!is_staged("0190a1b2-0000-7000-8000-000000000000"));
        assert!(!is_staged("notes#draft"));
        assert!(!is_staged("x#"));
    }

    #[test]
    fn only_old_staging_files_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("default");
        std::fs::create_dir_all(&nested).expect("mkdir");
        for name in ["a#1", "b", "c#draft"] {
            std::fs::write(nested.join(name), b"x").expect("write");
        }
        assert_eq!(remove_staged(dir.path(), Duration::from_secs(3600)).expect("sweep"), 0, "young files stay");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(remove_staged(dir.path(), Duration::from_millis(10)).expect("sweep"), 1);
        assert!(!nested.join("a#1").exists() && nested.join("b").exists() && nested.join("c#draft").exists());
        assert_eq!(remove_staged(&dir.path().join("missing"), Duration::ZERO).expect("no dir"), 0);
    }
}
