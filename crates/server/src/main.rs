//! `voice-connector`: parses the command line and runs the chosen command.

use clap::Parser;
use voice_connector::{admin, admin_functions, config, serve, streaming};

fn main() -> anyhow::Result<()> {
    let cli = config::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VC_LOG").unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            config::Command::Serve(args) => serve::run(args.settings.resolve()?).await,
            config::Command::Admin(config::AdminCommand::AddNumbers {
                settings,
                pool,
                state,
                city,
                numbers,
            }) => {
                let pool = pool.then_some((state.as_deref(), city.as_deref()));
                serve::add_numbers(settings.resolve()?, &numbers, pool).await
            }
            config::Command::Admin(config::AdminCommand::Carriers(cmd)) => {
                exit_2_on_bad_input(admin::carriers(*cmd).await)
            }
            config::Command::Admin(config::AdminCommand::Functions(cmd)) => {
                exit_2_on_bad_input(admin_functions::functions(*cmd).await)
            }
            config::Command::Admin(config::AdminCommand::Streaming(cmd)) => {
                exit_2_on_bad_input(streaming::admin::streaming(*cmd).await)
            }
        }
    })
}

/// Input the operator must fix: said plainly, exit status 2 (as clap does).
fn exit_2_on_bad_input(result: anyhow::Result<()>) -> anyhow::Result<()> {
    match result {
        Err(e) if e.is::<admin::BadInput>() => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
        other => other,
    }
}
