//! `kiln serve`: the engine behind the HTTP door, until Ctrl+C.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use kiln_engine::{Engine, EngineOptions};
use kiln_server::{Door, ServeOptions, UiSource};

#[derive(Args)]
pub struct ServeArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8790)]
    port: u16,
    /// Address to bind; loopback unless --allow-remote.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Allow a non-loopback --bind (the token and Host checks still apply).
    #[arg(long)]
    allow_remote: bool,
    /// Also answer to this host:port (a reverse proxy's name). Repeatable.
    #[arg(long = "allow-host")]
    allow_hosts: Vec<String>,
    /// Serve the UI from this folder instead of the copy built into Kiln.
    #[arg(long)]
    ui_dir: Option<PathBuf>,
    /// Kiln's data folder (default: $KILN_DATA_DIR or the platform's data folder).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut options = EngineOptions::standard();
    if let Some(dir) = args.data_dir {
        options.data_dir = dir;
    }
    let door = Door::bind(ServeOptions {
        addr: SocketAddr::new(args.bind, args.port),
        allow_remote: args.allow_remote,
        extra_hosts: args.allow_hosts,
        ui: args.ui_dir.map(UiSource::Folder).unwrap_or_default(),
        token: None,
    })
    .await?;
    let engine = tokio::task::spawn_blocking(move || Engine::start(options)).await?.context("starting the engine")?;
    engine.start_workers(kiln_engine::processing::store::Scope::All);
    // The first line is the address to open; scripts and tests read it.
    println!("Kiln is serving on {}", door.url());
    println!("Open that address in a browser on this machine; Ctrl+C stops.");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    door.run(engine.clone(), shutdown).await?;
    engine.shutdown();
    Ok(())
}
