//! # forge-auth
//!
//! GoTrue-compatible authentication for Forge, so that `supabase.auth` (auth-js) and the
//! Python `supabase_auth` client work unchanged at `/auth/v1`.
//!
//! ## Embedding
//!
//! The routes nest into an application's own router, whatever its state; a request needs a
//! [`forge_core::Project`] in its extensions, which [`forge_core::ProjectLayer`] provides.
//!
//! ```
//! use std::net::SocketAddr;
//!
//! use axum::extract::State;
//! use axum::{Router, routing::get};
//! use forge_auth::{Auth, AuthConfig};
//! use forge_core::{Principal, Project, ProjectLayer};
//!
//! #[derive(Clone)]
//! struct AppState {
//!     greeting: &'static str,
//! }
//!
//! // The app's own handler reads the caller that forge-auth's tokens name.
//! async fn hello(State(state): State<AppState>, who: Principal) -> String {
//!     format!("{} {:?}", state.greeting, who.user_id())
//! }
//!
//! fn app(project: Project) -> Result<Router, forge_auth::BuildError> {
//!     let auth = Auth::builder().config(AuthConfig::default()).build()?;
//!     Ok(Router::new()
//!         .route("/hello", get(hello))
//!         .nest("/auth/v1", auth.router())
//!         .layer(ProjectLayer::single(project))
//!         .with_state(AppState { greeting: "hello" }))
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # let _guard = rt.enter();
//! # let reference: forge_core::ProjectRef = "embedded".parse()?;
//! # let keys = forge_core::ProjectKeys::builder(reference.clone(), vec![7; 32]).build()?;
//! # let db = forge_core::Database::connect_lazy(&forge_core::DatabaseConfig::new("postgres://localhost/app"))?;
//! # let project = Project::new(reference, db, keys, forge_core::ProjectSettings::new("http://localhost:3000"));
//! let app = app(project)?;
//! // Per-client rate limits key on the peer address: serve with `ConnectInfo` (or set
//! // `AuthConfig::rate_limit_header` behind a proxy), else every client shares one bucket.
//! let _service = app.into_make_service_with_connect_info::<SocketAddr>();
//! # Ok(())
//! # }
//! ```
//!
//! Apply [`MIGRATIONS`] to the project's database first (`forge_core::migrate::run`). Tokens
//! are signed with the project's keys, so forge-core's [`forge_core::Principal`] extractor
//! recognises them in the same app.
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | [`AuthConfig`]: lifetimes, confirmation, password policy, rate limits, templates |
//! | [`mail`] | the [`Mailer`] trait, [`SmtpMailer`] (lettre), and the development [`Outbox`] |
//! | [`sms`] | the [`SmsSender`] trait, [`Twilio`], and the development [`SmsOutbox`] |
//! | [`model`] | `auth.users`, `auth.identities`, `auth.mfa_factors` rows and their JSON |
//! | [`store`] | the [`UserStore`] trait and [`PgUserStore`], the default |
//! | [`password`] | argon2id hashing, imported bcrypt hashes (upgraded on login), the policy |
//! | `api` | the endpoints at `/auth/v1` |
//! | `session` | sessions, access tokens, refresh-token rotation and reuse detection |
//! | `links` | email OTPs and links (stored as digests, single-use, expiring), PKCE flows |
//! | `limit` | per-client and per-address rate limits |
//!
//! ## Not yet supported
//!
//! SSO/SAML (`/sso`); the `web3` grant; passkeys and WebAuthn (MFA factors too); auth hooks
//! other than the custom access token hook; the OAuth 2.1 server mode; the audit log;
//! double-confirmed ("secure") email change (the link goes to the new address only). Texts go
//! through Twilio or the local outbox only (implement [`SmsSender`] for another provider).
//! Rate limits are kept in memory per process.
//!
//! The schema ([`MIGRATIONS`]) keeps GoTrue's table and column names (`auth.users`,
//! `auth.identities`, `auth.sessions`, `auth.refresh_tokens`, `auth.mfa_factors`, ...), so
//! SQL and RLS policies written for Supabase run unchanged.

mod api;
pub mod captcha;
pub mod config;
mod crypto;
pub mod error;
mod hooks;
mod limit;
mod links;
pub mod mail;
pub mod model;
pub mod password;
pub mod provider;
mod service;
mod session;
pub mod sms;
pub mod store;
pub mod third_party;
mod users;

pub use config::{AuthConfig, BuildError, Hooks, RateLimits, Template, Templates};
pub use error::{Error, ErrorKind, Result};
pub use mail::{Mail, MailError, MailKind, Mailer, Outbox, SmtpMailer, SmtpSettings};
pub use provider::{GitHub, IdentityProvider, Oidc, ProviderConfig, ProviderUser};
pub use service::{Auth, AuthBuilder};
pub use sms::{Channel, Sms, SmsError, SmsKind, SmsOutbox, SmsSender, Twilio, TwilioSettings};
pub use store::{Deletion, Lookup, NewIdentity, NewUser, PgUserStore, UserChange, UserPage, UserQuery, UserStore};

use forge_core::migrate::{Migration, MigrationSet};

/// forge-auth's migrations (owner `forge-auth`).
pub const MIGRATIONS: MigrationSet = MigrationSet {
    owner: "forge-auth",
    migrations: &[
        Migration { version: 1, name: "auth schema", sql: include_str!("../migrations/0001_auth_schema.sql") },
        Migration { version: 2, name: "flow state", sql: include_str!("../migrations/0002_flow_state.sql") },
        Migration { version: 3, name: "phone and hooks", sql: include_str!("../migrations/0003_phone_and_hooks.sql") },
    ],
};
