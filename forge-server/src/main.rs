//! `forge-server`: every Forge service in one binary, with its own embedded Postgres.
//!
//! Run with `cargo run -p forge-server` (no configuration needed) and hand
//! `http://127.0.0.1:8000` and the printed anon key to `supabase.createClient`.

use std::process::ExitCode;

use clap::Parser as _;
use forge_server::cli::Cli;

fn main() -> ExitCode {
    // Before any thread or file: what the server creates is private to its user.
    forge_server::private::restrict_new_files();
    // One process-wide rustls crypto provider (DEPENDENCIES.md, pitfall 1). An Err means one
    // was installed already, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("forge-server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(forge_server::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("forge-server: {e}");
            ExitCode::FAILURE
        }
    }
}
