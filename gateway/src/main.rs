//! `gateway serve | generate-cookie-key`.

use std::process::ExitCode;

use clap::Parser;
use gateway::{
    Application,
    config::{Cli, Command, Settings, generate_cookie_key},
};
use recapp_telemetry::TelemetryConfig;

/// sysexits' EX_CONFIG-ish "usage/config error".
const EXIT_CONFIG: u8 = 64;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::GenerateCookieKey => match generate_cookie_key() {
            Ok(key) => {
                println!("{key}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Serve(args) => {
            let _telemetry = match recapp_telemetry::init(TelemetryConfig {
                service_name: "gateway".into(),
                json_logs: args.log_format != "text",
                default_filter: "info".into(),
            }) {
                Ok(guard) => guard,
                Err(e) => {
                    eprintln!("error: telemetry: {e:#}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let settings = match Settings::from_args(*args) {
                Ok(settings) => settings,
                Err(e) => {
                    eprintln!("error: configuration: {e:#}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let app = match Application::build(settings).await {
                Ok(app) => app,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "Start-up failed.");
                    return ExitCode::FAILURE;
                }
            };
            match app.run_until_stopped().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "Server failed.");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
