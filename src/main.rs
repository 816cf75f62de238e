use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = subdesk::config::Cli::parse();
    let level = match (cli.verbose, &cli.command) {
        (0, subdesk::config::Command::Serve(_)) => "info",
        (0, _) => "warn",
        (1, _) => "info",
        _ => "debug",
    };
    subdesk::telemetry::init_logging_at(level);
    match subdesk::cli::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
