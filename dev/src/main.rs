//! `cargo run -p recapp-dev`: the whole system on this machine.

use std::{path::PathBuf, process::ExitCode, time::Instant};

use clap::Parser;
use recapp_dev::{DevOptions, DevSystem};
use recapp_telemetry::TelemetryConfig;

#[derive(Debug, Parser)]
#[command(
    name = "recapp-dev",
    about = "Run identity, membership and the gateway locally on SQLite"
)]
struct Args {
    /// Where the SQLite databases, local keys and emails live.
    #[arg(long, env = "RECAPP_DEV_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// The gateway's port on localhost.
    #[arg(long, env = "RECAPP_DEV_PORT", default_value_t = 8080)]
    port: u16,
    /// The first workspace's owner (created on first start).
    #[arg(long, default_value = "admin@example.com")]
    owner_email: String,
    #[arg(long, default_value = "My workspace")]
    workspace_name: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let started = Instant::now();
    let args = Args::parse();
    let _telemetry = match recapp_telemetry::init(TelemetryConfig {
        service_name: "recapp-dev".into(),
        json_logs: false,
        default_filter: "warn,recapp_dev=info".into(),
    }) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: telemetry: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let system = match DevSystem::start(DevOptions {
        data_dir: args.data_dir.clone(),
        port: args.port,
        owner_email: args.owner_email,
        workspace_name: args.workspace_name,
        print_links: true,
    })
    .await
    {
        Ok(system) => system,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!();
    println!(
        "  recapp is running (started in {} ms)",
        started.elapsed().as_millis()
    );
    println!("  Open {}", system.url);
    match &system.bootstrap {
        Some(b) => {
            println!("  First start: created the workspace and its owner. Sign in with");
            println!("    email:    {}", b.email);
            println!("    password: {}", b.password);
            println!(
                "  (shown once; change it later, or delete {} to start over)",
                args.data_dir.display()
            );
        }
        None => println!(
            "  Data: {} (delete it to start over)",
            args.data_dir.display()
        ),
    }
    println!(
        "  Emails are written to {}; invitation links are printed here.",
        args.data_dir.join("mail").display()
    );
    println!("  Press Ctrl-C to stop.");
    println!();
    match system.wait().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
