//! # forge-billing
//!
//! Stripe billing and usage metering for Forge: schema `billing`, verified idempotent
//! webhooks, plans and entitlements checked server-side, and usage reporting.
//!
//! Status: not implemented yet.
