//! The library's background thread: lists again the directories that change notices name
//! (inotify, FSEvents, ReadDirectoryChangesW through `notify`), checks every folder's directory
//! times every 10 s for what notices miss (network drives, folders it cannot watch, a notice
//! queue that overflowed), hashes new files, and tells subscribers when anything changed.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::FolderScan;
use super::walk::Recheck;
use crate::engine::{Engine, EngineState};
use crate::events::KilnEvent;

/// How long the watcher waits for a change notice before checking the directories' times.
const CHECK_EVERY: Duration = Duration::from_secs(10);
/// Notices arriving this close together are one change (a copy writes many times).
const SETTLE: Duration = Duration::from_millis(300);

/// What the notify thread tells this one.
enum Notice {
    /// Something changed at these paths.
    Paths(Vec<PathBuf>),
    /// Notices were lost (the queue overflowed): every directory's time must be checked.
    Rescan,
    /// The watcher failed (a limit on watches reached); checked by times until it recovers.
    Failed(String),
}

pub(crate) fn spawn_watcher(state: Weak<EngineState>, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("kiln-models".into())
        .spawn(move || {
            let (tx, rx) = std::sync::mpsc::channel();
            let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let notice = match event {
                    Ok(event) if event.need_rescan() => Notice::Rescan,
                    // Kiln's own reads (hashing, loading) open files in the folders.
                    Ok(event) if event.kind.is_access() => return,
                    Ok(event) => Notice::Paths(event.paths),
                    Err(e) => Notice::Failed(e.to_string()),
                };
                let _ = tx.send(notice);
            })
            .inspect_err(|e| tracing::warn!("model folders are not watched for changes ({e}); checked every 10 s"))
            .ok();
            let mut watches = Watches::default();
            let mut failures = HashSet::new();
            // The first scan lists everything (no tree has a listing yet).
            let mut recheck = Recheck::Mtimes;
            while !stop.load(Ordering::Relaxed) {
                let Some(state) = state.upgrade() else { return };
                let engine = Engine { state };
                if engine.rescan_models(&recheck) {
                    engine.emit(KilnEvent::ModelsChanged);
                }
                if let Some(watcher) = watcher.as_mut() {
                    watches.sync(watcher, &engine);
                }
                let stopping = || stop.load(Ordering::Relaxed);
                if engine.state.library.hash_pending(&stopping) > 0 {
                    engine.emit(KilnEvent::ModelsChanged);
                }
                drop(engine);
                recheck = next_recheck(&rx, &stop, &mut failures);
            }
        })
        .expect("a thread can be spawned");
}

/// Waits for a change notice (then lets a burst settle) or the period, checking the stop flag
/// every second; says what to list again.
fn next_recheck(rx: &Receiver<Notice>, stop: &AtomicBool, failures: &mut HashSet<String>) -> Recheck {
    let mut waited = Duration::ZERO;
    while waited < CHECK_EVERY && !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(first) => {
                std::thread::sleep(SETTLE);
                let mut paths = Vec::new();
                let mut everything = false;
                for notice in std::iter::once(first).chain(rx.try_iter()) {
                    match notice {
                        Notice::Paths(named) => paths.extend(named),
                        Notice::Rescan => everything = true,
                        Notice::Failed(error) => {
                            // Once per distinct failure: a watch limit reports on every notice.
                            if failures.insert(error.clone()) {
                                tracing::warn!(
                                    "watching the model folders failed: {error}; they are checked every 10 s"
                                );
                            }
                            everything = true;
                        }
                    }
                }
                if everything {
                    return Recheck::Mtimes;
                }
                paths.sort();
                paths.dedup();
                return Recheck::Paths(paths);
            }
            Err(RecvTimeoutError::Timeout) => waited += Duration::from_secs(1),
            Err(RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_secs(1));
                waited += Duration::from_secs(1);
            }
        }
    }
    Recheck::Mtimes
}

/// Why a folder of the library is not watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unwatched {
    /// The watch failed (permission denied below it, a limit on watches): not tried again while
    /// the folder stays in the library, so it is not tried, and logged, every 10 s.
    Failed,
    /// Its scan stopped at a bound: watching would walk the whole of it (`notify` adds a watch
    /// per directory on Linux), which the bound is there to avoid.
    CutShort,
    Refused,
}

/// The folders watched, and those not, each logged once.
#[derive(Default)]
struct Watches {
    watched: Vec<PathBuf>,
    unwatched: HashMap<PathBuf, Unwatched>,
}

impl Watches {
    /// Keeps the watcher on exactly the library's folders that scanned completely.
    fn sync(&mut self, watcher: &mut notify::RecommendedWatcher, engine: &Engine) {
        use notify::Watcher;
        let folders: Vec<(PathBuf, FolderScan)> = engine
            .model_folders()
            .into_iter()
            .map(|(path, _)| {
                let scan = engine.state.library.folder_scan(&path);
                (path, scan)
            })
            .collect();
        let listed = |path: &PathBuf| folders.iter().any(|(f, _)| f == path);
        // Gone from the library, or deleted (its watch went with it; it is watched again if it
        // comes back).
        for gone in self.watched.iter().filter(|w| !listed(w) || !w.is_dir()) {
            let _ = watcher.unwatch(gone);
        }
        self.watched.retain(|w| listed(w) && w.is_dir());
        self.unwatched.retain(|path, _| listed(path));
        for (folder, scan) in folders {
            let watched = self.watched.contains(&folder);
            let why = match scan {
                FolderScan::Complete => None,
                FolderScan::CutShort { .. } => Some(Unwatched::CutShort),
                FolderScan::Refused { .. } => Some(Unwatched::Refused),
            };
            match why {
                Some(why) => {
                    if watched {
                        let _ = watcher.unwatch(&folder);
                        self.watched.retain(|w| w != &folder);
                    }
                    if why == Unwatched::CutShort && self.unwatched.get(&folder) != Some(&why) {
                        tracing::info!(
                            "{} is not watched: its scan was cut short; its folders' times are checked every 10 s",
                            folder.display()
                        );
                    }
                    self.unwatched.insert(folder, why);
                }
                None if watched || self.unwatched.get(&folder) == Some(&Unwatched::Failed) || !folder.is_dir() => {}
                None => {
                    self.unwatched.remove(&folder);
                    match watcher.watch(&folder, notify::RecursiveMode::Recursive) {
                        Ok(()) => self.watched.push(folder),
                        Err(e) => {
                            tracing::warn!(
                                "cannot watch {}: {e}; its folders' times are checked every 10 s instead",
                                folder.display()
                            );
                            // Drop the watches added below it before the error.
                            let _ = watcher.unwatch(&folder);
                            self.unwatched.insert(folder, Unwatched::Failed);
                        }
                    }
                }
            }
        }
    }
}
