//! `kiln`: device snapshots and benchmarks from scripts, models, upscaling through the job queue,
//! and the serve mode for headless boxes.

mod devices;
mod models;
mod serve;
mod table;
mod upscale;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "kiln", version, about = "Kiln: local GPU image AI")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every device with its live readings and health (`--json` for a snapshot like `nvtop -s`).
    Devices(devices::DevicesArgs),
    /// The model files Kiln can read: list, inspect, hash.
    Models(models::ModelsArgs),
    /// Serve the UI and API to a browser on this machine.
    Serve(serve::ServeArgs),
    /// Upscale images (files or folders) through Kiln's job queue, with a progress bar.
    Upscale(upscale::UpscaleArgs),
}

fn main() {
    // Before any thread: wgpu's Wayland probe needs a runtime folder, or it prints errors.
    kiln_engine::process::ensure_runtime_dir();
    // Like other command-line tools, end quietly when the reader of our output goes away
    // (`kiln models list | head`) instead of panicking on a broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default SIGPIPE action at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KILN_LOG")
                .unwrap_or_else(|_| kiln_engine::LOG_DEFAULTS.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let outcome =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(anyhow::Error::from).and_then(
            |runtime| match cli.command {
                Command::Devices(args) => runtime.block_on(devices::run(args)).map(|()| 0),
                Command::Models(args) => models::run(args).map(|()| 0),
                Command::Serve(args) => runtime.block_on(serve::run(args)).map(|()| 0),
                Command::Upscale(args) => runtime.block_on(upscale::run(args)),
            },
        );
    // Every command ends the same way, without the C library's exit handlers: the GPU driver's
    // threads may still run (see `kiln_engine::Engine::exit`).
    let code = match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("Error: {error:?}");
            1
        }
    };
    kiln_engine::process::exit_now(code)
}
