//! `identity-service serve | migrate | hash-credential`.

use std::{io::Read, process::ExitCode};

use clap::Parser;
use identity_service::{
    Application,
    config::{Cli, Command, LogFormat, Settings},
    service::ServiceCredentials,
    store,
};
use recapp_migrations::{MigratorTrait, identity::Migrator};
use recapp_telemetry::TelemetryConfig;

/// sysexits' EX_CONFIG-ish "usage/config error".
const EXIT_CONFIG: u8 = 64;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_logs = match &cli.command {
        Command::Serve(args) => args.log_format == LogFormat::Json,
        _ => false,
    };
    let _telemetry = match recapp_telemetry::init(TelemetryConfig {
        service_name: "identity-service".into(),
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
                let url = args.resolve_url()?;
                let db = store::connect(&url, 2).await?;
                Migrator::up(&db, None).await?;
                db.close().await?;
                anyhow::Ok(())
            }
            .await;
            match result {
                Ok(()) => {
                    tracing::info!("Migrations applied.");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: migrate: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::HashCredential => {
            let mut secret = String::new();
            if std::io::stdin().read_to_string(&mut secret).is_err() || secret.trim().is_empty() {
                eprintln!("error: write the secret on standard input");
                return ExitCode::from(EXIT_CONFIG);
            }
            println!("{}", hex::encode(ServiceCredentials::hash(secret.trim())));
            ExitCode::SUCCESS
        }
    }
}
