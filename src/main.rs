//! The `alis-import` binary: parses the command line, starts telemetry (logs, and
//! OpenTelemetry when configured), runs the command, flushes telemetry last.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than the system allocator, to bound a large import's peak RSS
/// (see [`alis_import::allocator`]).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Before the runtime starts its threads.
    alis_import::allocator::tune();
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(run()),
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    // One TLS crypto provider for the whole process (server, client, Vault), so
    // behaviour does not depend on which dependency happens to link which.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = alis_import::cli::Cli::parse();
    let telemetry = match alis_import::telemetry::init(&cli.telemetry, cli.log_format) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("error: telemetry settings: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let code = match cli.run().await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    };
    // Last: the server has drained and its jobs have stopped, so their spans are in.
    telemetry.shutdown().await;
    code
}
