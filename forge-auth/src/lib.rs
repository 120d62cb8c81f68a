//! # forge-auth
//!
//! GoTrue-compatible authentication for Forge, so that `supabase.auth` (auth-js) and the
//! Python `supabase_auth` client work unchanged at `/auth/v1`.
//!
//! It will own schema `auth` (`auth.users`, `auth.identities`, `auth.sessions`,
//! `auth.refresh_tokens`, `auth.mfa_factors`) and its migrations; sign-up, the `token`
//! grants, OTP and magic links, OAuth and OIDC providers, TOTP MFA, the admin API and JWKS.
//! Tokens are issued with [`forge_core::ProjectKeys::sign`], and callers are recognised by
//! forge-core's [`forge_core::Principal`] extractor, so every Forge service agrees on who is
//! calling.
//!
//! Status: not implemented yet. The shared mechanisms it builds on (keys, principals,
//! errors in GoTrue's wire shape via [`forge_core::WireFormat::GoTrue`], migrations) are in
//! forge-core.
