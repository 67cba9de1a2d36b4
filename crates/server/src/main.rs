use clap::Parser;

mod config;
mod sip_edge;

fn main() -> anyhow::Result<()> {
    let cli = config::Cli::parse();
    let _ = cli;
    Ok(())
}
