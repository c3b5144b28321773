//! The `alis-import` binary: parses the command line, sets up logging, runs.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    // One TLS crypto provider for the whole process (server, client, Vault), so
    // behaviour does not depend on which dependency happens to link which.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = alis_import::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        alis_import::cli::LogFormat::Text => logs.init(),
        alis_import::cli::LogFormat::Json => logs.json().init(),
    }
    match cli.run().await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
