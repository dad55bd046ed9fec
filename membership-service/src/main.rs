//! `membership-service serve | migrate`.

use std::process::ExitCode;

use clap::Parser;
use membership_service::{
    Application,
    config::{Cli, Command, Settings},
    store,
};
use recapp_migrations::{MigratorTrait, membership::Migrator};
use recapp_telemetry::TelemetryConfig;

const EXIT_CONFIG: u8 = 64;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_logs = match &cli.command {
        Command::Serve(args) => args.log_format != "text",
        Command::Migrate(_) => false,
    };
    let _telemetry = match recapp_telemetry::init(TelemetryConfig {
        service_name: "membership-service".into(),
        json_logs,
        default_filter: "info".into(),
    }) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: telemetry: {e:#}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match cli.command {
        Command::Serve(args) => {
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
        Command::Migrate(args) => {
            let result = async {
                let db = store::connect(&args.resolve_url()?, 2).await?;
                Migrator::up(&db, None).await?;
                db.close().await?;
                anyhow::Ok(())
            }
            .await;
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: migrate: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
