//! # forge-auth
//!
//! GoTrue-compatible authentication for Forge, so that `supabase.auth` (auth-js) and the
//! Python `supabase_auth` client work unchanged at `/auth/v1`.
//!
//! ## Embedding
//!
//! ```no_run
//! use axum::Router;
//! use forge_auth::{Auth, AuthConfig};
//! use forge_core::{Project, ProjectLayer};
//!
//! fn app(project: Project) -> Router {
//!     let auth = Auth::builder().config(AuthConfig::default()).build();
//!     Router::new().nest("/auth/v1", auth.router()).layer(ProjectLayer::single(project))
//! }
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

pub use config::{AuthConfig, Hooks, RateLimits, Template, Templates};
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
