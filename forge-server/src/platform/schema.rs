//! The control plane's migrations, applied to the platform database after every crate's
//! (it refers to `auth.users`, the platform's users).

use forge_core::migrate::{Migration, MigrationSet};

/// The control plane's migrations (owner `forge-platform`).
pub const MIGRATIONS: MigrationSet = MigrationSet {
    owner: "forge-platform",
    migrations: &[
        Migration { version: 1, name: "control_plane", sql: include_str!("sql/0001_control_plane.sql") },
        Migration { version: 2, name: "usage", sql: include_str!("usage.sql") },
        Migration { version: 3, name: "project_migrations", sql: include_str!("sql/0003_project_migrations.sql") },
    ],
};

/// What this build's migrations of a project database are: each crate's latest
/// `owner:version`. A project whose record says otherwise is migrated when first opened.
pub fn project_migrations() -> String {
    crate::migrations()
        .iter()
        .map(|set| format!("{}:{}", set.owner, set.migrations.last().map_or(0, |m| m.version)))
        .collect::<Vec<_>>()
        .join(",")
}
