//! Projects and how a request finds its project.
//!
//! A [`Project`] carries its ref, database, keys and settings. A [`ProjectResolver`] picks the
//! project for a request; [`ProjectLayer`] runs it and puts the `Project` into the request's
//! extensions, answering unknown projects with a 404 in the wire format of the service asked.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::Request;
use http::request::Parts;
use tower::{Layer, Service};

use crate::db::Database;
use crate::error::{ForgeError, Rejection, WireFormat};
use crate::keys::ProjectKeys;

/// A validated project ref: 1 to 40 characters of `a-z`, `0-9` and `-`, starting with a letter
/// or digit. It is safe in a host label, a path segment and a database name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectRef(Arc<str>);

/// A string that is not a valid project ref.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid project ref (use 1-40 characters of a-z, 0-9 and '-', starting with a letter or digit)")]
pub struct InvalidProjectRef;

impl ProjectRef {
    /// Validates a project ref.
    pub fn new(value: &str) -> Result<Self, InvalidProjectRef> {
        let ok = (1..=40).contains(&value.len())
            && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !value.starts_with('-');
        if ok { Ok(Self(value.into())) } else { Err(InvalidProjectRef) }
    }

    /// The ref as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A ref hashes and compares as its text, so maps keyed by refs are searched with a `&str`.
impl std::borrow::Borrow<str> for ProjectRef {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ProjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ProjectRef {
    type Err = InvalidProjectRef;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// Per-project settings that services read.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProjectSettings {
    /// The URL clients use for this project (what `supabase.createClient` is given).
    pub public_url: String,
    /// Schemas exposed over REST, the first being the default (default `["public"]`).
    pub exposed_schemas: Vec<String>,
}

impl ProjectSettings {
    /// Settings with the given public URL and the defaults for everything else.
    pub fn new(public_url: impl Into<String>) -> Self {
        Self { public_url: public_url.into(), exposed_schemas: vec!["public".into()] }
    }

    /// Sets the exposed schemas.
    pub fn with_exposed_schemas(mut self, schemas: Vec<String>) -> Self {
        self.exposed_schemas = schemas;
        self
    }
}

#[derive(Debug)]
struct ProjectInner {
    reference: ProjectRef,
    db: Database,
    keys: ProjectKeys,
    settings: ProjectSettings,
}

/// A project: its ref, database, keys and settings. Cheap to clone; it is also an extractor.
#[derive(Debug, Clone)]
pub struct Project(Arc<ProjectInner>);

impl Project {
    /// Assembles a project.
    pub fn new(reference: ProjectRef, db: Database, keys: ProjectKeys, settings: ProjectSettings) -> Self {
        Self(Arc::new(ProjectInner { reference, db, keys, settings }))
    }

    /// The project's ref.
    pub fn reference(&self) -> &ProjectRef {
        &self.0.reference
    }

    /// The project's database.
    pub fn db(&self) -> &Database {
        &self.0.db
    }

    /// The project's keys.
    pub fn keys(&self) -> &ProjectKeys {
        &self.0.keys
    }

    /// The project's settings.
    pub fn settings(&self) -> &ProjectSettings {
        &self.0.settings
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Project {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Project>().cloned().ok_or_else(|| Rejection {
            error: ForgeError::internal("no Project in request extensions: is ProjectLayer installed?"),
            format: WireFormat::for_request(parts),
        })
    }
}

/// The result of resolving a request.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The project the request is for.
    pub project: Project,
    /// How many leading bytes of the path named the project (e.g. `/p/abc`); the layer strips
    /// them so services see their usual paths.
    pub strip_prefix: usize,
}

/// A boxed future, used to keep [`ProjectResolver`] object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Picks the project a request is for.
pub trait ProjectResolver: Send + Sync + 'static {
    /// Resolves the request's project, or fails with [`ForgeError::ProjectNotFound`].
    fn resolve<'a>(&'a self, parts: &'a Parts) -> BoxFuture<'a, Result<Resolved, ForgeError>>;
}

/// Serves every request from one project.
#[derive(Debug, Clone)]
pub struct SingleProject(pub Project);

impl ProjectResolver for SingleProject {
    fn resolve<'a>(&'a self, _parts: &'a Parts) -> BoxFuture<'a, Result<Resolved, ForgeError>> {
        Box::pin(async move { Ok(Resolved { project: self.0.clone(), strip_prefix: 0 }) })
    }
}

/// Looks projects up by ref.
pub trait ProjectLookup: Send + Sync + 'static {
    /// The project with this ref, if any.
    fn lookup<'a>(&'a self, reference: &'a ProjectRef) -> BoxFuture<'a, Result<Option<Project>, ForgeError>>;
}

/// An in-memory set of projects, for servers that know their projects up front.
#[derive(Debug, Default, Clone)]
pub struct ProjectMap(Arc<RwLock<HashMap<ProjectRef, Project>>>);

impl ProjectMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a project.
    pub fn insert(&self, project: Project) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).insert(project.reference().clone(), project);
    }

    /// Removes a project.
    pub fn remove(&self, reference: &ProjectRef) -> Option<Project> {
        self.0.write().unwrap_or_else(|e| e.into_inner()).remove(reference)
    }

    fn get(&self, reference: &ProjectRef) -> Option<Project> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).get(reference).cloned()
    }
}

impl ProjectLookup for ProjectMap {
    fn lookup<'a>(&'a self, reference: &'a ProjectRef) -> BoxFuture<'a, Result<Option<Project>, ForgeError>> {
        Box::pin(async move { Ok(self.get(reference)) })
    }
}

/// Resolves by a `/p/{ref}` path prefix and/or by the first label of the `Host` header.
///
/// The path prefix wins when both are enabled. With a `fallback`, requests that name no
/// project go to it; without one they get a 404.
pub struct RefResolver {
    lookup: Arc<dyn ProjectLookup>,
    by_path: bool,
    by_host: bool,
    /// With it, only `{ref}.<domain>` hosts name a project.
    host_domain: Option<String>,
    fallback: Option<Project>,
}

impl std::fmt::Debug for RefResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefResolver")
            .field("by_path", &self.by_path)
            .field("by_host", &self.by_host)
            .finish_non_exhaustive()
    }
}

impl RefResolver {
    /// A resolver over `lookup` with both strategies off; enable at least one.
    pub fn new(lookup: impl ProjectLookup) -> Self {
        Self { lookup: Arc::new(lookup), by_path: false, by_host: false, host_domain: None, fallback: None }
    }

    /// Resolves `/p/{ref}/...`, stripping the prefix.
    pub fn by_path_prefix(mut self) -> Self {
        self.by_path = true;
        self
    }

    /// Resolves `{ref}.example.com`.
    pub fn by_host_label(mut self) -> Self {
        self.by_host = true;
        self
    }

    /// Resolves `{ref}.<domain>` only: other hosts (an IP, `localhost`, another domain) name
    /// no project.
    pub fn by_host_under(mut self, domain: impl Into<String>) -> Self {
        self.by_host = true;
        self.host_domain = Some(domain.into().trim_start_matches('.').to_ascii_lowercase());
        self
    }

    /// Serves requests that name no project from `project`.
    pub fn with_fallback(mut self, project: Project) -> Self {
        self.fallback = Some(project);
        self
    }

    /// The ref named by the path, and the length of the prefix that named it.
    fn from_path(path: &str) -> Option<(&str, usize)> {
        let rest = path.strip_prefix("/p/")?;
        let end = rest.find('/').unwrap_or(rest.len());
        Some((&rest[..end], 3 + end))
    }

    fn from_host<'p>(parts: &'p Parts, domain: Option<&str>) -> Option<&'p str> {
        let host = parts.uri.host().or_else(|| parts.headers.get(http::header::HOST)?.to_str().ok())?;
        let host = host.split(':').next()?;
        if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
            return None;
        }
        let (label, rest) = host.split_once('.')?;
        match domain {
            Some(domain) => rest.trim_end_matches('.').eq_ignore_ascii_case(domain).then_some(label),
            None => (!rest.is_empty()).then_some(label),
        }
    }
}

fn not_found(name: &str) -> ForgeError {
    let shown: String = name.chars().take(64).collect();
    ForgeError::ProjectNotFound(shown)
}

impl ProjectResolver for RefResolver {
    fn resolve<'a>(&'a self, parts: &'a Parts) -> BoxFuture<'a, Result<Resolved, ForgeError>> {
        Box::pin(async move {
            let named = if let Some((name, len)) = self.by_path.then(|| Self::from_path(parts.uri.path())).flatten() {
                Some((name, len))
            } else {
                self.by_host
                    .then(|| Self::from_host(parts, self.host_domain.as_deref()))
                    .flatten()
                    .map(|name| (name, 0))
            };
            let Some((name, strip_prefix)) = named else {
                return match &self.fallback {
                    Some(p) => Ok(Resolved { project: p.clone(), strip_prefix: 0 }),
                    None => Err(ForgeError::ProjectNotFound(String::new())),
                };
            };
            let reference = ProjectRef::new(name).map_err(|_| not_found(name))?;
            match self.lookup.lookup(&reference).await? {
                Some(project) => Ok(Resolved { project, strip_prefix }),
                // A host like `localhost.localdomain` names no project: use the fallback. Under
                // a configured domain, it does name one, which does not exist.
                None if strip_prefix == 0 && self.fallback.is_some() && self.host_domain.is_none() => {
                    Ok(Resolved { project: self.fallback.clone().expect("checked"), strip_prefix: 0 })
                }
                None => Err(not_found(name)),
            }
        })
    }
}

/// A tower layer that resolves each request's [`Project`] and puts it into the request's
/// extensions.
///
/// With a path-prefix resolver, wrap the whole router (`layer.layer(router)`), not each route
/// (`Router::layer`): the `/p/{ref}` prefix must be stripped before routing.
#[derive(Clone)]
pub struct ProjectLayer {
    resolver: Arc<dyn ProjectResolver>,
}

impl std::fmt::Debug for ProjectLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectLayer").finish_non_exhaustive()
    }
}

impl ProjectLayer {
    /// A layer using `resolver`.
    pub fn new(resolver: impl ProjectResolver) -> Self {
        Self { resolver: Arc::new(resolver) }
    }

    /// A layer that serves everything from one project.
    pub fn single(project: Project) -> Self {
        Self::new(SingleProject(project))
    }
}

impl<S> Layer<S> for ProjectLayer {
    type Service = ProjectService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ProjectService { inner, resolver: self.resolver.clone() }
    }
}

/// The service made by [`ProjectLayer`].
#[derive(Clone)]
pub struct ProjectService<S> {
    inner: S,
    resolver: Arc<dyn ProjectResolver>,
}

impl<S> std::fmt::Debug for ProjectService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectService").finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for ProjectService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Take the service that was driven to readiness; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let resolver = self.resolver.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let resolved = resolver.resolve(&parts).await;
            match resolved {
                Ok(Resolved { project, strip_prefix }) => {
                    if strip_prefix > 0 {
                        match strip_path(&parts.uri, strip_prefix) {
                            Some(uri) => parts.uri = uri,
                            None => {
                                return Ok(ForgeError::NotFound.render(WireFormat::Plain, false));
                            }
                        }
                    }
                    parts.extensions.insert(project);
                    inner.call(Request::from_parts(parts, body)).await
                }
                Err(error) => {
                    // Judge the format by the path the service would have seen.
                    let path = parts.uri.path();
                    let service_path = RefResolver::from_path(path).map(|(_, len)| &path[len..]).unwrap_or(path);
                    Ok(error.render(WireFormat::for_path(service_path), false).into_response())
                }
            }
        })
    }
}

fn strip_path(uri: &http::Uri, prefix: usize) -> Option<http::Uri> {
    let path = uri.path().get(prefix..)?;
    let path = if path.is_empty() { "/" } else { path };
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut builder = http::Uri::builder().path_and_query(pq);
    if let Some(s) = uri.scheme() {
        builder = builder.scheme(s.clone());
    }
    if let Some(a) = uri.authority() {
        builder = builder.authority(a.clone());
    }
    builder.build().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_refs_are_validated() {
        for ok in ["abc", "a1-b2", "0proj", &"a".repeat(40)] {
            assert!(ProjectRef::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "ABC", "a_b", "a.b", "a/b", "é", &"a".repeat(41), "x y"] {
            assert!(ProjectRef::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn path_prefix_and_host_label_are_read() {
        assert_eq!(RefResolver::from_path("/p/abc/rest/v1/t"), Some(("abc", 6)));
        assert_eq!(RefResolver::from_path("/p/abc"), Some(("abc", 6)));
        assert_eq!(RefResolver::from_path("/rest/v1/t"), None);
        let parts =
            |host: &str| Request::builder().uri("/x").header("host", host).body(()).expect("request").into_parts().0;
        assert_eq!(RefResolver::from_host(&parts("abc.forge.test:8000"), None), Some("abc"));
        assert_eq!(RefResolver::from_host(&parts("localhost:8000"), None), None);
        assert_eq!(RefResolver::from_host(&parts("127.0.0.1:8000"), None), None);
        let under = Some("forge.test");
        assert_eq!(RefResolver::from_host(&parts("abc.forge.test:8000"), under), Some("abc"));
        assert_eq!(RefResolver::from_host(&parts("abc.FORGE.test"), under), Some("abc"));
        assert_eq!(RefResolver::from_host(&parts("abc.other.test"), under), None);
        assert_eq!(RefResolver::from_host(&parts("x.abc.forge.test"), under), None);
        assert_eq!(RefResolver::from_host(&parts("forge.test"), under), None);
    }

    #[test]
    fn stripping_keeps_the_query() {
        let uri: http::Uri = "/p/abc/rest/v1/t?select=*".parse().expect("uri");
        assert_eq!(strip_path(&uri, 6).expect("stripped").to_string(), "/rest/v1/t?select=*");
        let uri: http::Uri = "/p/abc".parse().expect("uri");
        assert_eq!(strip_path(&uri, 6).expect("stripped").to_string(), "/");
    }
}
