//! The model library's periodic rescan on a folder of 10 000 small files in nested folders
//! (issue 16). Times one tick of:
//! - `before`: the walk Kiln made every 10 s until issue 16, reproduced as it was (every
//!   directory listed by `kiln_models::scan::find`, every model's canonical name and two stamps
//!   read, the fingerprint compared);
//! - `full`: the same work through the new code (`Recheck::Full`);
//! - `mtimes`: what the periodic tick does now (`Recheck::Mtimes`: each directory's time, each
//!   model's stamp; nothing listed while nothing changed);
//! - `event`: what one change notice costs (`Recheck::Paths`, one file rewritten).
//!
//! Two trees: `mixed`, 100 models among 9 900 other files (a projects folder), and `models`,
//! 10 000 model files (a large collection: every file is a model whose stamp is read).
//! Run with
//!   cargo build --workspace --all-targets && target/debug/deps/library_rescan-<hash> --bench
//! (the dev profile, as `scripts/run.sh` builds Kiln). Without `--bench` (as `cargo test` runs
//! it) it walks 1 000 files twice, as a smoke test. Prints one JSON line per tree and tick kind:
//! the median and fastest wall and thread-CPU milliseconds, and what the tick listed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kiln_engine::library::{FolderKind, ModelLibrary, Recheck};
use kiln_models::hash::FileStamp;
use serde_json::json;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `files` files in `files / 100` leaf folders of 100, ten leaves to a parent folder; one file
/// in `every` is a model (`.pth`, a few bytes: listed as unreadable, which costs the same).
fn make_tree(root: &Path, files: usize, every: usize) -> usize {
    let mut models = 0;
    for i in 0..files {
        let leaf = root.join(format!("group-{:02}/set-{:03}", i / 1000, i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(&leaf).unwrap();
        }
        let name = if i % every == 0 {
            models += 1;
            format!("model-{i:05}.pth")
        } else {
            format!("image-{i:05}.png")
        };
        std::fs::write(leaf.join(name), b"kiln").unwrap();
    }
    models
}

/// One tick of the scan Kiln ran every 10 s before issue 16, as `ModelLibrary::scan` was.
fn before_tick(folder: &Path, last: &mut Vec<(PathBuf, Option<FileStamp>)>) -> bool {
    let mut files = Vec::new();
    for path in kiln_models::scan::find(folder) {
        let path = path.canonicalize().unwrap_or(path);
        let data = kiln_engine::library::hashed_file(&path).unwrap_or_else(|| path.join("model_index.json"));
        let stamp = FileStamp::of(&path)
            .ok()
            .zip(FileStamp::of(&data).ok())
            .map(|(a, b)| FileStamp { size: a.size + b.size, modified_ns: a.modified_ns.max(b.modified_ns) });
        files.push((path, stamp));
    }
    let changed = *last != files;
    *last = files;
    changed
}

/// Median and fastest of `ticks` runs of `tick`, wall and thread CPU, in milliseconds.
fn time(ticks: usize, mut tick: impl FnMut()) -> serde_json::Value {
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..ticks {
        let (w0, c0) = (Instant::now(), thread_cpu_ns());
        tick();
        cpu.push((thread_cpu_ns() - c0) as f64 / 1e6);
        wall.push(w0.elapsed().as_secs_f64() * 1e3);
    }
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    };
    let (wall, cpu) = (sorted(wall), sorted(cpu));
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    json!({
        "wall_ms_median": round(wall[wall.len() / 2]),
        "wall_ms_min": round(wall[0]),
        "cpu_ms_median": round(cpu[cpu.len() / 2]),
    })
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (files, ticks) = if bench { (10_000, 20) } else { (1_000, 2) };
    for (tree, every) in [("mixed", 100), ("models", 1)] {
        let dir = kiln_testdir::TempDir::new();
        let root = dir.path().join("models");
        let models = make_tree(&root, files, every);
        let root = root.canonicalize().unwrap();
        // A listing is trusted once its directory's time is 2 s old (walk.rs, RACY).
        std::thread::sleep(Duration::from_millis(2100));
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let library = ModelLibrary::open(&data);
        let folders = [(root.clone(), FolderKind::User)];
        let first = Instant::now();
        library.scan(&folders, &Recheck::Full);
        let first_ms = first.elapsed().as_secs_f64() * 1e3;
        let print = |kind: &str, figures: serde_json::Value, library: &ModelLibrary| {
            let cost = library.last_cost();
            let line = json!({
                "tree": tree, "files": files, "models": models, "tick": kind, "figures": figures,
                "listed_dirs": cost.listed, "checked_dirs": cost.checked, "stamped_models": cost.stamped,
            });
            println!("{line}");
        };
        print("first_scan", json!({ "wall_ms": (first_ms * 1000.0).round() / 1000.0 }), &library);

        let mut last = Vec::new();
        before_tick(&root, &mut last);
        let figures = time(ticks, || assert!(!before_tick(&root, &mut last)));
        println!("{}", json!({ "tree": tree, "files": files, "models": models, "tick": "before", "figures": figures }));
        let figures = time(ticks, || {
            library.scan(&folders, &Recheck::Full);
        });
        print("full", figures, &library);
        let figures = time(ticks, || assert!(!library.scan(&folders, &Recheck::Mtimes)));
        print("mtimes", figures, &library);
        // One model rewritten, as a download finishing would: its notice names it.
        let changed = root.join("group-00/set-000/model-00000.pth");
        let mut size = 4;
        let figures = time(ticks, || {
            size += 1;
            std::fs::write(&changed, vec![b'k'; size]).unwrap();
            assert!(library.scan(&folders, &Recheck::Paths(vec![changed.clone()])));
        });
        print("event", figures, &library);
    }
}
