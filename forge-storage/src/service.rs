//! [`Storage`]: the embeddable storage service.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

/// Settings of the storage service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct StorageConfig {
    /// The largest object anyone may upload, in bytes, whatever a bucket allows.
    pub file_size_limit: u64,
    /// The longest a signed URL may stay valid, in seconds.
    pub max_signed_url_expiry: u64,
    /// How long an upload's body may go without a byte before it is cut off (an interrupted
    /// upload: nothing is kept, or for a resumable upload what arrived is kept).
    pub upload_idle_timeout: std::time::Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            file_size_limit: 50 * 1024 * 1024,
            max_signed_url_expiry: 7 * 24 * 3600,
            upload_idle_timeout: std::time::Duration::from_secs(30),
        }
    }
}

impl StorageConfig {
    /// With the largest object anyone may upload, in bytes.
    pub fn with_file_size_limit(mut self, bytes: u64) -> Self {
        self.file_size_limit = bytes;
        self
    }

    /// With the longest a signed URL may stay valid, in seconds.
    pub fn with_max_signed_url_expiry(mut self, seconds: u64) -> Self {
        self.max_signed_url_expiry = seconds;
        self
    }

    /// With how long an upload's body may go without a byte.
    pub fn with_upload_idle_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.upload_idle_timeout = timeout;
        self
    }
}

/// Builds a [`Storage`].
#[derive(Debug, Default)]
pub struct StorageBuilder {
    config: StorageConfig,
    store: Option<Arc<dyn ObjectStore>>,
}

impl StorageBuilder {
    /// Uses `config`.
    pub fn config(mut self, config: StorageConfig) -> Self {
        self.config = config;
        self
    }

    /// Keeps object bytes in `store` (required: local disk, S3 or any `ObjectStore`).
    pub fn store(mut self, store: Arc<dyn ObjectStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Builds the service, or says what is missing or not valid. There is no default store:
    /// bytes kept in memory would be lost at the next start, so the caller names one.
    pub fn build(self) -> Result<Storage, BuildError> {
        let store = self.store.ok_or(BuildError::NoStore)?;
        if self.config.file_size_limit == 0 {
            return Err(BuildError::Invalid { setting: "storage.file_size_limit", reason: "must be positive" });
        }
        if self.config.upload_idle_timeout.is_zero() {
            return Err(BuildError::Invalid { setting: "storage.upload_idle_timeout", reason: "must be positive" });
        }
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Ok(Storage(Arc::new(Inner { config: self.config, store, renders: tokio::sync::Semaphore::new(cores) })))
    }
}

/// Why a [`StorageBuilder`] could not build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No object store was given ([`StorageBuilder::store`]).
    #[error("no object store: call StorageBuilder::store with local disk, S3 or another ObjectStore")]
    NoStore,
    /// A setting has a value the service cannot run with.
    #[error("{setting} {reason}")]
    Invalid {
        /// The setting, as named in `forge.toml`.
        setting: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: StorageConfig,
    pub(crate) store: Arc<dyn ObjectStore>,
    /// Image transformations in progress.
    pub(crate) renders: tokio::sync::Semaphore,
}

/// The Supabase-compatible storage service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Storage(pub(crate) Arc<Inner>);

impl Storage {
    /// Starts a builder.
    pub fn builder() -> StorageBuilder {
        StorageBuilder::default()
    }

    /// The settings.
    pub fn config(&self) -> &StorageConfig {
        &self.0.config
    }

    /// The object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.0.store
    }

    /// Where a blob version of `project` lives: `<project ref>/<version>`, so projects never
    /// share keys and renaming an object never moves bytes.
    pub(crate) fn blob_path(project: &forge_core::Project, version: &str) -> Path {
        Path::from_iter([project.reference().as_str(), version])
    }
}
