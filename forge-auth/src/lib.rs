//! # forge-auth
//!
//! GoTrue-compatible authentication for Forge, so that `supabase.auth` (auth-js) and the
//! Python `supabase_auth` client work unchanged at `/auth/v1`.
//!
//! So far it holds:
//! - [`MIGRATIONS`]: the `auth` schema with GoTrue's table and column names (`auth.users`,
//!   `auth.identities`, `auth.sessions`, `auth.refresh_tokens`, `auth.mfa_factors`, ...), so
//!   SQL and RLS policies written for Supabase run unchanged;
//! - [`password`]: argon2id hashing, verification of imported bcrypt hashes with upgrade on
//!   login, and the password policy.
//!
//! The HTTP API (sign-up, the `token` grants, OTP and magic links, OAuth and OIDC, MFA, the
//! admin API, JWKS) is not implemented yet. Tokens will be issued with
//! [`forge_core::ProjectKeys::sign`] and callers recognised by forge-core's
//! [`forge_core::Principal`] extractor.

pub mod password;

use forge_core::migrate::{Migration, MigrationSet};

/// forge-auth's migrations (owner `forge-auth`).
pub const MIGRATIONS: MigrationSet = MigrationSet {
    owner: "forge-auth",
    migrations: &[Migration {
        version: 1,
        name: "auth schema",
        sql: include_str!("../migrations/0001_auth_schema.sql"),
    }],
};
