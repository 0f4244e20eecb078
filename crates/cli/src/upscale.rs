//! `kiln upscale`: queues the inputs as one batch in Kiln's job queue (the one the app shows),
//! runs that batch on this machine's devices with the same engine, and draws a progress bar.
//! Ctrl+C cancels the batch's jobs at their next tile.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use kiln_engine::postprocessing::images::OutputFormat;
use kiln_engine::postprocessing::upscale::{AlphaMode, OutputSize, PrecisionChoice, UpscaleSettings};
use kiln_engine::processing::ops::{InputItem, SubmitJobs};
use kiln_engine::processing::store::{JobFilter, Scope};
use kiln_engine::processing::{Job, JobState, Step};
use kiln_engine::{Engine, EngineOptions, KilnEvent};

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Png,
    Jpg,
    Webp,
}

#[derive(Clone, Copy, ValueEnum)]
enum Alpha {
    Model,
    Resize,
}

#[derive(Clone, Copy, ValueEnum)]
enum Precision {
    Auto,
    F32,
    F16,
}

#[derive(Args)]
pub struct UpscaleArgs {
    /// Image files or folders (PNG, JPEG, WebP, TIFF, BMP).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output folder (default: the current folder). Files are named `<stem>_x4.png` and never
    /// overwrite: `<stem>_x4-1.png` follows.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// A model of Kiln's library by name (`realesr-animevideov3-x4`) or any model file.
    #[arg(short, long)]
    model: Option<String>,
    /// Output scale (the model's scale, then a Lanczos resize when they differ).
    #[arg(short, long, conflicts_with = "width")]
    scale: Option<f32>,
    /// Output width in pixels; the height keeps the aspect ratio.
    #[arg(short, long)]
    width: Option<u32>,
    /// Largest tile side in input pixels, or `auto` to choose from the device's memory budget.
    #[arg(short, long, default_value = "auto")]
    tile: String,
    #[arg(short, long, value_enum, default_value = "png")]
    format: Format,
    /// JPEG/WebP quality, 1 to 100.
    #[arg(short, long, default_value_t = 92)]
    quality: u8,
    /// Include images in sub-folders.
    #[arg(short, long)]
    recursive: bool,
    /// Average the 8 flips and rotations (8× the work).
    #[arg(long)]
    tta: bool,
    /// How the alpha channel is upscaled.
    #[arg(long, value_enum, default_value = "model")]
    alpha: Alpha,
    #[arg(long, value_enum, default_value = "auto")]
    precision: Precision,
    /// Run on this device (`kiln devices` lists them); default: Kiln picks.
    #[arg(long)]
    device: Option<String>,
}

/// The model as a path: an existing file, else a library model whose name or file stem matches.
fn resolve_model(engine: &Engine, model: &str) -> anyhow::Result<String> {
    if Path::new(model).exists() {
        return Ok(model.to_owned());
    }
    let library = block_on(engine.models_list(kiln_engine::devices::NoInput {}))?;
    let wanted = model.to_ascii_lowercase();
    let found = library.models.iter().find(|m| {
        let stem = Path::new(&m.path).file_stem().map(|s| s.to_string_lossy().to_ascii_lowercase());
        m.name.to_ascii_lowercase() == wanted || stem.as_deref() == Some(wanted.as_str())
    });
    match found {
        Some(m) => Ok(m.path.clone()),
        None => {
            let names: Vec<&str> = library.models.iter().filter(|m| m.runnable).map(|m| m.name.as_str()).collect();
            bail!("no model named {model}; upscalers in the library: {}", names.join(", "))
        }
    }
}

/// Runs an engine future to completion from synchronous code inside the runtime.
fn block_on<T>(future: impl std::future::Future<Output = Result<T, kiln_engine::ApiError>>) -> anyhow::Result<T> {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
        .map_err(|e| anyhow::anyhow!(e.message))
}

fn bar(done: f64, width: usize) -> String {
    let filled = ((done.clamp(0.0, 1.0)) * width as f64).round() as usize;
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

pub async fn run(args: UpscaleArgs) -> anyhow::Result<i32> {
    let mut options = EngineOptions::standard();
    options.background_sampling = false;
    let engine = tokio::task::spawn_blocking(move || Engine::start(options)).await?.context("starting the engine")?;
    let model = args.model.as_deref().map(|m| resolve_model(&engine, m)).transpose()?;
    let tile = match args.tile.as_str() {
        "auto" => None,
        n => Some(n.parse::<u32>().context("--tile takes `auto` or a number of pixels")?),
    };
    let settings = UpscaleSettings {
        model,
        size: match (args.scale, args.width) {
            (Some(scale), _) => OutputSize::Scale { scale },
            (None, Some(width)) => OutputSize::Width { width },
            (None, None) => OutputSize::Model,
        },
        format: match args.format {
            Format::Png => OutputFormat::Png,
            Format::Jpg => OutputFormat::Jpeg,
            Format::Webp => OutputFormat::Webp,
        },
        quality: args.quality,
        alpha: match args.alpha {
            Alpha::Model => AlphaMode::Model,
            Alpha::Resize => AlphaMode::Resize,
        },
        tta: args.tta,
        tile,
        precision: match args.precision {
            Precision::Auto => PrecisionChoice::Auto,
            Precision::F32 => PrecisionChoice::F32,
            Precision::F16 => PrecisionChoice::F16,
        },
    };
    // An id from `kiln devices`, or its row number there.
    let device = match &args.device {
        Some(name) => Some(crate::devices::resolve(&engine, name).await?.device_id),
        None => None,
    };
    let output = match args.output {
        Some(dir) => dir,
        None => std::env::current_dir()?,
    };
    let request = SubmitJobs {
        inputs: args.inputs.iter().map(|p| InputItem::Path { path: p.display().to_string() }).collect(),
        recursive: args.recursive,
        steps: vec![Step::Upscale(settings)],
        output_dir: Some(output.display().to_string()),
        device_id: device,
        priority: 0,
        session_id: None,
        batch_name: Some(format!(
            "kiln upscale ({} input{})",
            args.inputs.len(),
            if args.inputs.len() == 1 { "" } else { "s" }
        )),
    };
    let submit_engine = engine.clone();
    let submitted = tokio::task::spawn_blocking(move || submit_engine.submit_jobs(request, true))
        .await?
        .map_err(|e| anyhow::anyhow!(e.message))?;
    for skipped in &submitted.skipped {
        eprintln!("skipped {}: {}", skipped.input, skipped.reason);
    }
    let Some(batch) = submitted.batch_id else {
        bail!("nothing to upscale");
    };
    // Run again after being stopped or killed, the same command goes on where it stopped:
    // finished inputs are not redone, and the killed run's unfinished jobs run here, once.
    let resumed = engine.queue().resume_batch(batch)?;
    for output in &resumed.already_done {
        eprintln!("already upscaled: {output} (delete it to run that input again)");
    }
    if !resumed.adopted.is_empty() {
        eprintln!(
            "resuming {} job{} of an earlier run",
            resumed.adopted.len(),
            if resumed.adopted.len() == 1 { "" } else { "s" }
        );
    }
    let total = engine.queue().list(&JobFilter { batch_id: Some(batch), ..Default::default() })?.len();
    if total == 0 {
        eprintln!("nothing left to do");
        return Ok(0);
    }
    eprintln!("{total} image{} queued as batch {batch}", if total == 1 { "" } else { "s" });
    let mut events = engine.subscribe();
    engine.start_workers(Scope::Batches(vec![batch]));

    let started = Instant::now();
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut live = std::collections::HashMap::<i64, f64>::new();
    let mut reported = std::collections::HashSet::<i64>::new();
    let mut cancelled = false;
    let jobs_of_batch = |engine: &Engine| -> anyhow::Result<Vec<Job>> {
        Ok(engine.queue().list(&JobFilter { batch_id: Some(batch), ..Default::default() })?)
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c(), if !cancelled => {
                cancelled = true;
                let ids: Vec<i64> = jobs_of_batch(&engine)?.iter().map(|j| j.id).collect();
                eprintln!("\ncancelling: running jobs stop at their next tile");
                engine.queue().cancel(&ids)?;
            }
            event = events.recv() => {
                if let Ok(KilnEvent::JobProgress { progress }) = event {
                    live.insert(progress.job_id, progress.progress);
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let jobs = jobs_of_batch(&engine)?;
        for job in jobs.iter().filter(|j| j.state.is_final()) {
            if !reported.insert(job.id) {
                continue;
            }
            if interactive {
                eprint!("\r\x1b[2K");
            }
            match job.state {
                JobState::Done => println!("{} -> {}", job.spec.input, job.output().unwrap_or("?")),
                JobState::Failed => eprintln!(
                    "{} failed: {}",
                    job.spec.input,
                    job.error.as_ref().map(|e| e.message.as_str()).unwrap_or("unknown error")
                ),
                _ => eprintln!("{} cancelled", job.spec.input),
            }
        }
        let done: f64 = jobs
            .iter()
            .map(|j| if j.state.is_final() { 1.0 } else { live.get(&j.id).copied().unwrap_or(j.progress) })
            .sum::<f64>()
            / total.max(1) as f64;
        let finished = jobs.iter().filter(|j| j.state.is_final()).count();
        if interactive {
            let running = jobs.iter().find(|j| j.state == JobState::Running).map(|j| j.name.as_str()).unwrap_or("");
            let elapsed = started.elapsed().as_secs_f64();
            let eta = if done > 0.01 { format!(" ETA {:.0}s", elapsed / done * (1.0 - done)) } else { String::new() };
            eprint!("\r\x1b[2K{} {:>3.0}% {finished}/{total} {running}{eta}", bar(done, 30), done * 100.0);
            let _ = std::io::stderr().flush();
        }
        if finished == total || (cancelled && jobs.iter().all(|j| j.state != JobState::Running)) {
            break;
        }
    }
    if interactive {
        eprintln!();
    }
    engine.shutdown();
    let jobs = jobs_of_batch(&engine)?;
    let failed = jobs.iter().filter(|j| j.state == JobState::Failed).count();
    let done = jobs.iter().filter(|j| j.state == JobState::Done).count();
    eprintln!("{done} done, {failed} failed in {:.1} s", started.elapsed().as_secs_f64());
    Ok(if cancelled {
        130
    } else if failed > 0 {
        1
    } else {
        0
    })
}
