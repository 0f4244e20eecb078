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

fn main() -> anyhow::Result<()> {
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
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Devices(args) => runtime.block_on(devices::run(args)),
        Command::Models(args) => models::run(args),
        Command::Serve(args) => runtime.block_on(serve::run(args)),
        Command::Upscale(args) => {
            let code = runtime.block_on(upscale::run(args))?;
            exit_now(code)
        }
    }
}

/// Ends the process with `code` once its output is flushed, without the C library's exit
/// handlers. The jobs are final and stored by now, but the GPU driver's threads (cubecl's, the
/// engine's workers) still run, and `exit` would tear down the driver's static state beside
/// them: on the software GPU that corrupted the heap at exit, seen twice in the test run under
/// load ("corrupted size vs. prev_size in fastbins", "malloc_consolidate(): unaligned fastbin
/// chunk"), after every job had finished.
fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    #[cfg(unix)]
    // SAFETY: `_exit` ends the process at once; the output is flushed and the jobs' state is
    // committed to the database, so nothing that must outlive the process is left in memory.
    unsafe {
        libc::_exit(code)
    }
    #[cfg(not(unix))]
    std::process::exit(code)
}
