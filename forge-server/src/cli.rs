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
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Apply bootstrap and migrations, then serve the API (the default).
    Serve,
    /// Apply bootstrap and migrations, then exit.
    Migrate,
    /// Print the default project's URL and API keys as JSON.
    Keys,
    /// Manage the platform's projects (beside a running server, or on their own).
    Projects {
        /// What to do.
        #[command(subcommand)]
        action: ProjectsCommand,
    },
    /// Manage personal access tokens for the Management API.
    Tokens {
        /// What to do.
        #[command(subcommand)]
        action: TokensCommand,
    },
}

/// `forge-server projects ...`: each prints JSON.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum ProjectsCommand {
    /// Every project.
    List,
    /// A new project.
    Create {
        /// Its name.
        #[arg(long)]
        name: String,
        /// The organization's id (slug).
        #[arg(long, default_value = "default")]
        organization: String,
    },
    /// Delete a project: its database, files and keys.
    Delete {
        /// The project's ref.
        reference: String,
    },
    /// Pause a project: requests answer 503 until it is restored.
    Pause {
        /// The project's ref.
        reference: String,
    },
    /// Restore a paused project.
    Restore {
        /// The project's ref.
        reference: String,
    },
    /// Export a project to one archive file: its database (`pg_dump`) and its stored
    /// objects, with a manifest of their sizes and SHA-256. Gzip-compressed when the file
    /// name ends in `.gz` or `.tgz`.
    Export {
        /// The project's ref.
        reference: String,
        /// The archive file to write.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Import an archive made by `export` as a new project (a new ref and new keys); an
    /// archive that does not match its manifest is refused.
    Import {
        /// The archive file.
        archive: PathBuf,
        /// The organization's id (slug) (default: the archive's, if it is here, else `default`).
        #[arg(long)]
        organization: Option<String>,
        /// The new project's name (default: the archive's).
        #[arg(long)]
        name: Option<String>,
    },
}

/// `forge-server tokens ...`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum TokensCommand {
    /// Print a new personal access token for the platform user with this email, as the only
    /// line of output; the user is made when missing (the first user of a fresh server
    /// becomes its owner).
    Create {
        /// The platform user's email.
        #[arg(long)]
        email: String,
        /// The token's name.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}
