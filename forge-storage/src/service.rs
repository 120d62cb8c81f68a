//! [`Storage`]: the embeddable storage service.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

/// Settings of the storage service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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

    /// Keeps object bytes in `store` (default: in memory, for tests).
    pub fn store(mut self, store: Arc<dyn ObjectStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Builds the service.
    pub fn build(self) -> Storage {
        let store = self.store.unwrap_or_else(|| Arc::new(object_store::memory::InMemory::new()));
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Storage(Arc::new(Inner { config: self.config, store, renders: tokio::sync::Semaphore::new(cores) }))
    }
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
