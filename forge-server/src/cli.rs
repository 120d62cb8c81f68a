//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Forge: a Supabase-compatible backend in one binary.
#[derive(Debug, Parser)]
#[command(name = "forge-server", version, about)]
pub struct Cli {
    /// The config file (default: `forge.toml` in the working directory, if present).
    #[arg(long, short, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Apply bootstrap and migrations, then serve the API (the default).
    Serve,
    /// Apply bootstrap and migrations, then exit.
    Migrate,
    /// Print the project URL and API keys as JSON.
    Keys,
}
