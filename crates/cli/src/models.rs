//! `kiln models`: list the models under folders, inspect, hash or convert one file.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use kiln_engine::models::{self, hash, scan};

use crate::table;

#[derive(Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Every model under the folders (default: Kiln's model folder), with what it is.
    List {
        folders: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// What one model file is: format, architecture, scale, parameters, dtypes, metadata.
    Inspect {
        path: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// SHA-256 and the AutoV2 short hash (first 10 hex digits) model sites show.
    Hash { path: PathBuf },
    /// Rewrites a model (pickle, ncnn, safetensors) as .safetensors, which loads without
    /// trusting the original file; tensors keep their dtypes.
    Convert { input: PathBuf, output: PathBuf },
}

/// Kiln's own model folder: `<data dir>/models`.
fn default_folder() -> PathBuf {
    kiln_engine::EngineOptions::standard().data_dir.join("models")
}

pub fn run(args: ModelsArgs) -> anyhow::Result<()> {
    match args.action {
        Action::List { folders, json } => {
            let folders = if folders.is_empty() { vec![default_folder()] } else { folders };
            let mut found = Vec::new();
            for folder in &folders {
                found.extend(scan::scan(folder));
            }
            if json {
                let values: Vec<serde_json::Value> = found
                    .iter()
                    .map(|r| match r {
                        Ok(info) => serde_json::to_value(info).unwrap_or_default(),
                        Err(e) => serde_json::json!({ "path": e.path, "error": e.kind.to_string() }),
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&values)?);
                return Ok(());
            }
            if found.is_empty() {
                let shown: Vec<String> = folders.iter().map(|f| f.display().to_string()).collect();
                println!("No models under {}.", shown.join(", "));
                return Ok(());
            }
            let rows: Vec<Vec<String>> = found
                .iter()
                .map(|r| match r {
                    Ok(m) => vec![
                        m.name.clone(),
                        format!("{:?}", m.format).to_lowercase(),
                        m.label.clone(),
                        table::bytes(m.file_size),
                        m.path.clone(),
                    ],
                    Err(e) => vec![
                        e.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                        "-".into(),
                        format!("error: {}", e.kind),
                        "-".into(),
                        e.path.display().to_string(),
                    ],
                })
                .collect();
            println!("{}", table::render(&["NAME", "FORMAT", "WHAT", "SIZE", "PATH"], &rows));
        }
        Action::Inspect { path, json } => {
            let info = models::inspect(&path)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
                return Ok(());
            }
            println!("{}", info.path);
            println!("  format        {:?}", info.format);
            println!("  architecture  {}", info.label);
            println!("  details       {}", serde_json::to_string(&info.architecture)?);
            println!("  parameters    {} in {} tensors", info.parameters, info.tensors);
            let dtypes: Vec<String> =
                info.dtypes.iter().map(|d| format!("{} ×{}", d.dtype.as_str(), d.tensors)).collect();
            println!("  dtypes        {}", dtypes.join(", "));
            println!("  size          {}", table::bytes(info.file_size));
            for (key, value) in &info.metadata {
                let short: String = value.chars().take(100).collect();
                println!("  metadata      {key} = {short}");
            }
        }
        Action::Hash { path } => {
            let sha = hash::sha256_file(&path).with_context(|| format!("reading {}", path.display()))?;
            println!("{}  {}  {}", hash::autov2(&sha), sha, path.display());
        }
        Action::Convert { input, output } => {
            let count = models::convert::to_safetensors(&input, &output)?;
            println!("{count} tensors written to {}", output.display());
        }
    }
    Ok(())
}
