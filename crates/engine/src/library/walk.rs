//! One model folder's walk: bounded (entries read, seconds), safe against symlink loops, and
//! incremental. A directory whose modification time is the one it had when it was listed is not
//! listed again: its sub-folders and model files are the ones found then (a directory's time
//! changes when an entry is added, removed or renamed in it; a file's new content shows in the
//! file's own stamp). Git's index trusts file times the same way, and guards the same way against
//! a change inside the clock's granularity ("racy git"). The watcher's events say which
//! directories to list again without reading any other directory's time.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kiln_models::ModelFormat;
use kiln_models::hash::FileStamp;

use super::stamp;
use super::system_folders::{MountTable, Refusal, refusal_at};

/// How far one walk of a folder goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Directory entries read, files and folders alike, listed now or remembered from the last
    /// listing (so a folder cut short is cut at the same place every time).
    pub entries: u32,
    /// How long one walk may take.
    pub time: Duration,
}

impl Default for Bounds {
    /// 200 000 entries: a large model collection is a few thousand files, and this many list in
    /// about a second on a local disk (10 000 in 30-40 ms of CPU, docs/benchmarks.md); 20 s
    /// covers a slow network drive's first listing without letting one hold the library for
    /// minutes.
    fn default() -> Self {
        Self { entries: 200_000, time: Duration::from_secs(20) }
    }
}

/// Deepest folder nesting walked, as in `kiln_models::scan` (model folders are shallow).
const MAX_DEPTH: usize = 8;
/// A listing is trusted only while the directory's time is this much older than the listing:
/// a change within the file system's time granularity (2 s on FAT) could leave the time as it was.
const RACY: Duration = Duration::from_secs(2);

/// Which directories a walk lists again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recheck {
    /// Every directory, and every model's stamp (what the library did every 10 s before).
    Full,
    /// Directories whose modification time changed; every model's stamp is read again (content
    /// changes do not show in a directory's time).
    Mtimes,
    /// The directories holding these paths (the watcher's events name them); every other
    /// directory is taken as it was, without reading its time.
    Paths(Vec<PathBuf>),
}

/// What a walk did, for the tests and the bench.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkCost {
    /// Directories listed (`read_dir`).
    pub listed: u32,
    /// Directories whose time was read to decide whether to list them.
    pub checked: u32,
    /// Model files whose stamp was read.
    pub stamped: u32,
}

impl std::ops::AddAssign for WalkCost {
    fn add_assign(&mut self, other: Self) {
        self.listed += other.listed;
        self.checked += other.checked;
        self.stamped += other.stamped;
    }
}

/// Why a walk stopped before the end of its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    Entries { bound: u32 },
    Time { bound: Duration },
}

impl Cut {
    /// A sentence for the Models page, beside the folder.
    pub fn message(&self) -> String {
        let stopped = match self {
            Cut::Entries { bound } => format!("Cut short after {bound} files and folders"),
            Cut::Time { bound } => format!("Cut short after {} s (a slow or network drive?)", bound.as_secs()),
        };
        format!("{stopped}: models further in are not listed. Add the folders that hold your models instead.")
    }
}

/// A model found: its canonical path and the stamp it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub path: PathBuf,
    pub stamp: Option<FileStamp>,
}

/// One directory as it was listed.
struct Listing {
    mtime_ns: Option<u128>,
    listed_ns: u128,
    /// Entries read (a partial listing, stopped at the bound, is never trusted).
    entries: u32,
    complete: bool,
    /// The device the directory is on, to notice a mount below it.
    device: Option<u64>,
    /// Sub-folders, canonical (a linked folder by its target, so a loop is walked once).
    dirs: Vec<PathBuf>,
    models: Vec<Found>,
}

impl Listing {
    /// Whether a new listing found what the old one did (the same folders, models and stamps).
    fn holds_the_same(&self, old: &Listing) -> bool {
        self.dirs == old.dirs && self.models == old.models
    }

    fn trusted(&self, mtime_ns: Option<u128>) -> bool {
        self.complete
            && mtime_ns.is_some_and(|m| m == self.mtime_ns.unwrap_or(0) && self.listed_ns >= m + RACY.as_nanos())
    }
}

/// One folder of the library and what its walks found, by canonical directory.
pub(crate) struct Tree {
    pub root: PathBuf,
    /// Set for a folder the library may not walk; such a tree stays empty.
    pub refused: Option<Refusal>,
    pub cut: Option<Cut>,
    pub cost: WalkCost,
    listings: HashMap<PathBuf, Listing>,
    /// Directories in walk order, so the models come out in the same order every time.
    order: Vec<PathBuf>,
}

impl Tree {
    pub fn new(root: PathBuf, refused: Option<Refusal>) -> Self {
        Self { root, refused, cut: None, cost: WalkCost::default(), listings: HashMap::new(), order: Vec::new() }
    }

    /// The models found, in walk order.
    pub fn models(&self) -> impl Iterator<Item = &Found> {
        self.order.iter().filter_map(|d| self.listings.get(d)).flat_map(|l| l.models.iter())
    }

    /// Walks the folder again as `recheck` says; returns whether what it holds changed: a model
    /// found, gone or with a new stamp, a folder reached or lost, the cut.
    pub fn walk(&mut self, recheck: &Recheck, bounds: Bounds) -> bool {
        self.cost = WalkCost::default();
        if self.refused.is_some() {
            return false;
        }
        let forced = match recheck {
            Recheck::Paths(paths) if !self.listings.is_empty() => {
                let forced = self.listed_dirs_of(paths);
                if forced.is_empty() {
                    return false;
                }
                forced
            }
            _ => HashSet::new(),
        };
        let start = Instant::now();
        let mut previous = std::mem::take(&mut self.listings);
        let cut_before = self.cut.take();
        self.order.clear();
        let mut changed = false;
        let mut mounts: Option<MountTable> = None;
        let mut entries = 0u32;
        let mut visited = HashSet::from([self.root.clone()]);
        let mut stack = vec![(self.root.clone(), 0usize, None::<u64>)];
        while let Some((dir, depth, parent_device)) = stack.pop() {
            if entries >= bounds.entries {
                self.cut = Some(Cut::Entries { bound: bounds.entries });
                break;
            }
            if start.elapsed() > bounds.time {
                self.cut = Some(Cut::Time { bound: bounds.time });
                break;
            }
            let room = bounds.entries - entries;
            let old = previous.remove(&dir);
            let listing = match (recheck, old) {
                (Recheck::Paths(_), Some(old)) if !forced.contains(&dir) => old,
                (Recheck::Mtimes, Some(mut old)) => {
                    self.cost.checked += 1;
                    let meta = std::fs::metadata(&dir).ok();
                    if old.trusted(meta.as_ref().and_then(mtime_ns)) {
                        for model in &mut old.models {
                            let now = stamp(&model.path);
                            changed |= now != model.stamp;
                            model.stamp = now;
                        }
                        self.cost.stamped += old.models.len() as u32;
                        old
                    } else {
                        let Some(listing) = self.list(&dir, meta, room, parent_device, &mut mounts) else {
                            changed = true;
                            continue;
                        };
                        changed |= !listing.holds_the_same(&old);
                        listing
                    }
                }
                (_, old) => {
                    let meta = std::fs::metadata(&dir).ok();
                    let Some(listing) = self.list(&dir, meta, room, parent_device, &mut mounts) else {
                        changed |= old.is_some();
                        continue;
                    };
                    changed |= old.is_none_or(|old| !listing.holds_the_same(&old));
                    listing
                }
            };
            entries += listing.entries;
            if !listing.complete {
                self.cut = Some(Cut::Entries { bound: bounds.entries });
            }
            if depth < MAX_DEPTH {
                // Reversed, so the stack pops them in name order.
                for sub in listing.dirs.iter().rev() {
                    if visited.insert(sub.clone()) {
                        stack.push((sub.clone(), depth + 1, listing.device));
                    }
                }
            }
            self.order.push(dir.clone());
            self.listings.insert(dir, listing);
        }
        // What was listed before and not reached now is gone (or beyond a new cut).
        changed || !previous.is_empty() || self.cut != cut_before
    }

    /// Lists `dir` (canonical): its sub-folders and model files, up to `room` entries. None when
    /// it cannot be read, or lies on a file system the library refuses (a mount below the folder).
    fn list(
        &mut self,
        dir: &Path,
        meta: Option<std::fs::Metadata>,
        room: u32,
        parent_device: Option<u64>,
        mounts: &mut Option<MountTable>,
    ) -> Option<Listing> {
        let meta = meta?;
        let device = device(&meta);
        if parent_device.is_some() && device != parent_device {
            let mounts = mounts.get_or_insert_with(MountTable::read);
            if let Some(refusal) = refusal_at(dir, mounts) {
                tracing::debug!("not walking {}: {refusal}", dir.display());
                return None;
            }
        }
        self.cost.listed += 1;
        let mut listing = Listing {
            mtime_ns: mtime_ns(&meta),
            listed_ns: now_ns(),
            entries: 0,
            complete: true,
            device,
            dirs: Vec::new(),
            models: Vec::new(),
        };
        if ModelFormat::of_path(dir) == Some(ModelFormat::Diffusers) {
            listing.entries = 1;
            listing.models.push(Found { path: dir.to_path_buf(), stamp: stamp(dir) });
            self.cost.stamped += 1;
            return Some(listing);
        }
        let reader = std::fs::read_dir(dir).ok()?;
        for entry in reader.flatten() {
            if listing.entries >= room {
                listing.complete = false;
                break;
            }
            listing.entries += 1;
            let name = entry.file_name();
            if kiln_models::scan::skipped(&name) {
                continue;
            }
            let path = dir.join(&name);
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => listing.dirs.push(path),
                Ok(kind) if kind.is_symlink() => {
                    // By its target, so a model linked twice is one model and a loop ends.
                    let Ok(target) = path.canonicalize() else { continue };
                    if target.is_dir() {
                        let mounts = mounts.get_or_insert_with(MountTable::read);
                        match refusal_at(&target, mounts) {
                            Some(refusal) => tracing::debug!("not following {}: {refusal}", path.display()),
                            None => listing.dirs.push(target),
                        }
                    } else if ModelFormat::of_path(&path).is_some() {
                        listing.models.push(Found { stamp: stamp(&target), path: target });
                    }
                }
                Ok(_) if ModelFormat::of_path(&path).is_some() => {
                    listing.models.push(Found { stamp: stamp(&path), path });
                }
                _ => {}
            }
        }
        self.cost.stamped += listing.models.len() as u32;
        listing.dirs.sort();
        listing.models.sort_by(|a, b| a.path.cmp(&b.path));
        Some(listing)
    }

    /// The listed directories that hold `paths`: each path's nearest listed ancestor (by its
    /// canonical name too, for a path through a link). Paths under skipped folders (`.git`) or
    /// outside this folder name none.
    fn listed_dirs_of(&self, paths: &[PathBuf]) -> HashSet<PathBuf> {
        let mut dirs = HashSet::new();
        let mut tried = HashSet::new();
        for path in paths {
            let Ok(inside) = path.strip_prefix(&self.root) else { continue };
            if inside.components().any(|c| kiln_models::scan::skipped(c.as_os_str())) {
                continue;
            }
            if self.listings.contains_key(path) {
                dirs.insert(path.clone());
                continue;
            }
            for ancestor in path.ancestors().skip(1) {
                if !ancestor.starts_with(&self.root) {
                    break;
                }
                if !tried.insert(ancestor.to_path_buf()) {
                    break;
                }
                let listed = Some(ancestor.to_path_buf())
                    .filter(|a| self.listings.contains_key(a))
                    .or_else(|| ancestor.canonicalize().ok().filter(|c| self.listings.contains_key(c)));
                if let Some(listed) = listed {
                    dirs.insert(listed);
                    break;
                }
            }
        }
        dirs
    }
}

fn mtime_ns(meta: &std::fs::Metadata) -> Option<u128> {
    meta.modified().ok()?.duration_since(UNIX_EPOCH).ok().map(|d| d.as_nanos())
}

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

#[cfg(unix)]
fn device(meta: &std::fs::Metadata) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    Some(meta.dev())
}

/// Windows has no device number in std's metadata; drive letters are roots there, and refused.
#[cfg(not(unix))]
fn device(_: &std::fs::Metadata) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(mtime_ns: u128, listed_ns: u128) -> Listing {
        Listing {
            mtime_ns: Some(mtime_ns),
            listed_ns,
            entries: 0,
            complete: true,
            device: None,
            dirs: Vec::new(),
            models: Vec::new(),
        }
    }

    #[test]
    fn a_listing_within_the_clocks_granularity_is_not_trusted() {
        let second = 1_000_000_000;
        // Listed 2 s after the directory's last change: trusted while the time stays.
        assert!(listing(10 * second, 12 * second).trusted(Some(10 * second)));
        assert!(!listing(10 * second, 12 * second).trusted(Some(11 * second)));
        // Listed within 2 s of it: a change in the same clock tick (FAT keeps 2 s) would leave
        // the time as it was, so it is listed again.
        assert!(!listing(10 * second, 11 * second).trusted(Some(10 * second)));
        assert!(!listing(10 * second, 12 * second).trusted(None));
        let partial = Listing { complete: false, ..listing(10 * second, 20 * second) };
        assert!(!partial.trusted(Some(10 * second)));
    }
}
