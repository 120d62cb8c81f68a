//! [`Data`]: the embeddable REST service and its per-project schema caches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use forge_core::{Project, ProjectRef};
use tokio::sync::OnceCell;

use crate::error::{Error, ErrorKind, Result};
use crate::schema::{Schema, SchemaCache};

/// Settings of the REST service.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DataConfig {
    /// The most rows a read returns (PostgREST's `db-max-rows`); `None` is unlimited.
    pub max_rows: Option<u64>,
    /// Whether `GET /` serves the OpenAPI document.
    pub openapi: bool,
    /// Whether `.explain()` (`Accept: application/vnd.pgrst.plan...`) may show query plans.
    /// Off by default, as in PostgREST: plans reveal the schema to any caller.
    pub plan_enabled: bool,
    /// Schemas searched after the request's own (PostgREST's `db-extra-search-path`):
    /// `public` and `extensions` by default, as on Supabase.
    pub extra_search_path: Vec<String>,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            max_rows: None,
            openapi: true,
            plan_enabled: false,
            extra_search_path: vec!["public".into(), "extensions".into()],
        }
    }
}

/// Builds a [`Data`].
#[derive(Debug, Default)]
pub struct DataBuilder {
    config: DataConfig,
}

impl DataConfig {
    /// With a cap on the rows a read returns (`None`: no cap).
    pub fn with_max_rows(mut self, max: Option<u64>) -> Self {
        self.max_rows = max;
        self
    }

    /// With the OpenAPI root document on or off.
    pub fn with_openapi(mut self, enabled: bool) -> Self {
        self.openapi = enabled;
        self
    }

    /// With the schemas searched after the request's own (replacing `public, extensions`).
    pub fn with_extra_search_path(mut self, schemas: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.extra_search_path = schemas.into_iter().map(Into::into).collect();
        self
    }

    /// With `.explain()` allowed to show query plans, or not.
    pub fn with_plan_enabled(mut self, enabled: bool) -> Self {
        self.plan_enabled = enabled;
        self
    }
}

impl DataBuilder {
    /// With these settings.
    pub fn config(mut self, config: DataConfig) -> Self {
        self.config = config;
        self
    }

    /// Builds the service, or says which setting is not valid.
    pub fn build(self) -> Result<Data, BuildError> {
        if self.config.max_rows == Some(0) {
            return Err(BuildError::Invalid { setting: "max_rows", reason: "must be positive (None: no cap)" });
        }
        Ok(Data(Arc::new(Inner { config: self.config, caches: Mutex::new(HashMap::new()) })))
    }
}

/// Why a [`DataBuilder`] could not build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting has a value the service cannot run with.
    #[error("{setting} {reason}")]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

#[derive(Debug)]
struct Inner {
    config: DataConfig,
    caches: Mutex<HashMap<ProjectRef, Arc<OnceCell<SchemaCache>>>>,
}

/// The PostgREST-compatible REST service. Cheap to clone.
///
/// Each project gets its own schema cache, loaded on the project's first request and kept
/// current by DDL notifications.
#[derive(Debug, Clone)]
pub struct Data(Arc<Inner>);

impl Data {
    /// Starts a builder.
    pub fn builder() -> DataBuilder {
        DataBuilder::default()
    }

    /// The settings.
    pub fn config(&self) -> &DataConfig {
        &self.0.config
    }

    /// The current schema of `project`, loading (and starting to watch) it on first use.
    pub async fn schema(&self, project: &Project) -> Result<Arc<Schema>> {
        let cell = {
            let mut caches = self.0.caches.lock().unwrap_or_else(|e| e.into_inner());
            caches.entry(project.reference().clone()).or_default().clone()
        };
        let cache = cell
            .get_or_try_init(|| SchemaCache::watch(project.db(), project.settings().exposed_schemas.clone()))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, project = %project.reference(), "loading the schema cache failed");
                Error::refused(
                    ErrorKind::SchemaCacheUnavailable,
                    "Could not query the database for the schema cache. Retrying.",
                )
            })?;
        Ok(cache.snapshot())
    }

    /// Forgets a project's schema cache (and stops watching it), e.g. when the project is
    /// removed.
    pub fn forget(&self, project: &ProjectRef) {
        self.0.caches.lock().unwrap_or_else(|e| e.into_inner()).remove(project);
    }
}
