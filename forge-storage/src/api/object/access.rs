//! How a read reaches an object: as the caller through row-level security (`authenticated`),
//! publicly (the bucket must be public), or with a signed URL's token (`sign`). The three
//! variants of each read route (download, info, render) share one handler through
//! [`ObjectRead<M>`], as the resumable-upload routes share theirs through `TusCaller<P>`.

use std::marker::PhantomData;

use axum::extract::{FromRequestParts, Path, Query};
use forge_core::rls::RequestContext;
use forge_core::{Claims, Project};
use http::request::Parts;
use serde::Deserialize;
use serde_json::Value;

use super::sign::verify_token;
use super::{check_name, ensure_public};
use crate::error::{Error, Result};
use crate::rows::{Reader, object_row};

/// Reads as the caller: row-level security on `storage.objects` decides.
#[derive(Debug)]
pub(crate) struct Authenticated;

/// Reads from a public bucket, whoever asks.
#[derive(Debug)]
pub(crate) struct Public;

/// Reads with a signed URL's `token`, which names the object and may carry a transformation.
#[derive(Debug)]
pub(crate) struct Signed;

/// One of [`Authenticated`], [`Public`] and [`Signed`].
pub(crate) trait AccessMode: Send + Sync + 'static {
    /// Which one.
    const KIND: Kind;
}

/// The kinds of access, for [`AccessMode::KIND`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Authenticated,
    Public,
    Signed,
}

impl AccessMode for Authenticated {
    const KIND: Kind = Kind::Authenticated;
}

impl AccessMode for Public {
    const KIND: Kind = Kind::Public;
}

impl AccessMode for Signed {
    const KIND: Kind = Kind::Signed;
}

/// What a read was granted by.
#[derive(Debug)]
enum Grant {
    Caller(RequestContext),
    Public,
    Signed(Claims),
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct ReadQuery {
    token: Option<String>,
    download: Option<String>,
}

/// A read of `bucket/name` in mode `M`: the object's name is checked (for signed URLs, the
/// token is verified instead) and the row is read as the mode allows.
#[derive(Debug)]
pub(crate) struct ObjectRead<M> {
    pub(crate) project: Project,
    pub(crate) bucket: String,
    pub(crate) name: String,
    /// `download=`: serve as an attachment, under this name when it is not empty.
    pub(crate) download: Option<String>,
    grant: Grant,
    _mode: PhantomData<M>,
}

impl<M: AccessMode, S: Send + Sync> FromRequestParts<S> for ObjectRead<M> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let project = Project::from_request_parts(parts, state).await.map_err(|r| Error::Core(r.error))?;
        let caller = match M::KIND {
            Kind::Authenticated => {
                Some(RequestContext::from_request_parts(parts, state).await.map_err(|r| Error::Core(r.error))?)
            }
            Kind::Public | Kind::Signed => None,
        };
        let Path((bucket, name)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|r| Error::invalid(r.body_text()))?;
        let Query(q) =
            Query::<ReadQuery>::from_request_parts(parts, state).await.map_err(|r| Error::invalid(r.body_text()))?;
        let grant = match (M::KIND, caller) {
            (Kind::Signed, _) => Grant::Signed(verify_token(&project, q.token.as_deref(), "download", &bucket, &name)?),
            (Kind::Authenticated, Some(ctx)) => {
                check_name(&name)?;
                Grant::Caller(ctx)
            }
            _ => {
                check_name(&name)?;
                Grant::Public
            }
        };
        Ok(ObjectRead { project, bucket, name, download: q.download, grant, _mode: PhantomData })
    }
}

impl<M> ObjectRead<M> {
    /// The object's row rendered as `json`, read as the mode allows (a public read first
    /// checks that the bucket is public), or 404 `NoSuchKey`.
    pub(crate) async fn row(&self, json: &str) -> Result<Value> {
        let reader = match &self.grant {
            Grant::Caller(ctx) => Reader::Caller(ctx),
            Grant::Public => {
                ensure_public(&self.project, &self.bucket).await?;
                Reader::Service
            }
            Grant::Signed(_) => Reader::Service,
        };
        object_row(&self.project, reader, json, &self.bucket, &self.name).await
    }

    /// The signed URL's claims, for a signed read.
    pub(crate) fn claims(&self) -> Option<&Claims> {
        match &self.grant {
            Grant::Signed(claims) => Some(claims),
            _ => None,
        }
    }
}
