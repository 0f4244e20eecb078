//! `kiln serve`: the engine behind the HTTP door, until Ctrl+C or SIGTERM; then running jobs go
//! back to the queue and the process ends cleanly (`Engine::exit`).

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
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        kiln_engine::process::stop_signal().await;
        let _ = stopping.send(());
    };
    let serving = door.run(engine.clone(), shutdown);
    tokio::pin!(serving);
    // After a stop signal, requests still open get a few seconds (an event stream ends at once).
    let overdue = async {
        if stopped.await.is_ok() {
            tokio::time::sleep(STOP_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = &mut serving => served?,
        () = overdue => tracing::warn!("requests were still open {} s after the stop signal; stopping anyway", STOP_GRACE.as_secs()),
    }
    // Running jobs go back to the queue and the process ends without exit handlers.
    eprintln!("Kiln stopped.");
    engine.exit(0)
}

/// How long open requests may take to finish once a stop signal came.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
