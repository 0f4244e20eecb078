//! The library's state: a walk tree per folder (`walk.rs`), the models found in them, each read
//! once per file version, what changed since the last scan, and the hashes still to compute.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use kiln_models::hash::{FileStamp, HashCache};
use kiln_models::{ModelError, ModelInfo};

use super::system_folders::{MountTable, refusal_at};
use super::walk::{Bounds, Recheck, Tree, WalkCost};
use super::{FolderKind, FolderScan, hashed_file};

/// A scanned file: the stamp it was read at and what was found.
#[derive(Clone)]
pub(crate) struct Scanned {
    pub stamp: Option<FileStamp>,
    pub folder: PathBuf,
    pub found: Result<ModelInfo, String>,
}

/// The library's state: scans reused while files are unchanged.
pub struct ModelLibrary {
    pub(crate) scanned: Mutex<HashMap<PathBuf, Scanned>>,
    pub(crate) hashes: HashCache,
    /// One tree per folder, by canonical path. Held through a whole scan, so scans take turns
    /// (the watcher's and an operation's) rather than walk the same folders twice at once.
    trees: Mutex<HashMap<PathBuf, Tree>>,
    /// The models of the last scan in walk order, with their folder and stamp.
    last: Mutex<Vec<(PathBuf, PathBuf, Option<FileStamp>)>>,
    bounds: Bounds,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl ModelLibrary {
    pub fn open(data_dir: &Path) -> Self {
        Self::with_bounds(data_dir, Bounds::default())
    }

    /// A library whose walks stop at `bounds` (the tests use small ones).
    pub fn with_bounds(data_dir: &Path, bounds: Bounds) -> Self {
        Self {
            scanned: Mutex::new(HashMap::new()),
            hashes: HashCache::open(data_dir.join("hashes.json")),
            trees: Mutex::new(HashMap::new()),
            last: Mutex::new(Vec::new()),
            bounds,
        }
    }

    /// Brings the library up to date with `folders` (canonical, with where each comes from),
    /// listing the directories `recheck` says and reading only new or changed model files.
    /// Returns whether anything changed since the last scan.
    pub fn scan(&self, folders: &[(PathBuf, FolderKind)], recheck: &Recheck) -> bool {
        let mut trees = lock(&self.trees);
        let before = trees.len();
        trees.retain(|root, _| folders.iter().any(|(f, _)| f == root));
        let mut changed = trees.len() != before;
        let mut roots = Vec::new();
        for (root, kind) in folders {
            if roots.contains(&root) {
                continue;
            }
            roots.push(root);
            let tree = trees.entry(root.clone()).or_insert_with(|| {
                changed = true;
                // The user's folders only: Kiln's own and the bundled one are where Kiln put
                // them, which for a distribution's package is under /usr/share.
                let refused = match kind {
                    FolderKind::User => refusal_at(root, &MountTable::read()),
                    FolderKind::Default | FolderKind::Bundled => None,
                };
                if let Some(refusal) = &refused {
                    tracing::warn!("not scanning a model folder from the settings: {refusal}");
                }
                Tree::new(root.clone(), refused)
            });
            changed |= tree.walk(recheck, self.bounds);
        }
        if !changed {
            return false;
        }
        let models = || {
            roots
                .iter()
                .filter_map(|root| trees.get(*root).map(|tree| (*root, tree)))
                .flat_map(|(root, tree)| tree.models().map(move |found| (&found.path, root, found.stamp)))
        };
        let mut last = lock(&self.last);
        // The same models as the last scan, in the same order (one changed file, the usual
        // notice): only the entries whose stamp moved are touched. Comparing paths is a memcmp;
        // hashing every path of a large library is what a rebuild costs.
        let same = last.len() == models().count()
            && last.iter().zip(models()).all(|((path, folder, _), (p, f, _))| path == p && folder == f);
        if same {
            let moved: Vec<(usize, Option<FileStamp>)> = last
                .iter()
                .zip(models())
                .enumerate()
                .filter(|(_, ((_, _, was), (_, _, now)))| was != now || now.is_none())
                .map(|(i, (_, (_, _, now)))| (i, now))
                .collect();
            for (i, stamp) in moved {
                let (path, folder, was) = &mut last[i];
                *was = stamp;
                let found = kiln_models::inspect(path).map_err(|e: ModelError| e.kind.to_string());
                lock(&self.scanned).insert(path.clone(), Scanned { stamp, folder: folder.clone(), found });
            }
            return true;
        }
        let files: Vec<(PathBuf, PathBuf, Option<FileStamp>)> =
            models().map(|(path, folder, stamp)| (path.clone(), folder.clone(), stamp)).collect();
        self.rebuild(&files);
        *last = files;
        true
    }

    /// Makes the library's entries exactly `files`, reading the new and changed ones.
    fn rebuild(&self, files: &[(PathBuf, PathBuf, Option<FileStamp>)]) {
        // New and changed files are read first, holding nothing the operations read: inspecting a
        // large pickle takes a while, and the library stays listable meanwhile.
        let stale: Vec<&(PathBuf, PathBuf, Option<FileStamp>)> = {
            let current = lock(&self.scanned);
            files
                .iter()
                .filter(|(path, _, stamp)| current.get(path).is_none_or(|s| s.stamp != *stamp || stamp.is_none()))
                .collect()
        };
        let mut fresh: HashMap<&PathBuf, Scanned> = stale
            .into_iter()
            .map(|(path, folder, stamp)| {
                let found = kiln_models::inspect(path).map_err(|e: ModelError| e.kind.to_string());
                (path, Scanned { stamp: *stamp, folder: folder.clone(), found })
            })
            .collect();
        let mut scanned = lock(&self.scanned);
        // Moved, not copied: a large library's entries carry every model's metadata.
        let mut old = std::mem::take(&mut *scanned);
        for (path, folder, _) in files {
            // A model in two folders belongs to the later one, as the folders are listed.
            if let Some(entry) = scanned.get_mut(path) {
                entry.folder = folder.clone();
                continue;
            }
            let entry = match fresh.remove(path) {
                Some(entry) => entry,
                None => match old.remove(path) {
                    Some(entry) => Scanned { folder: folder.clone(), ..entry },
                    None => continue,
                },
            };
            scanned.insert(path.clone(), entry);
        }
    }

    /// How the last scan of `folder` went.
    pub fn folder_scan(&self, folder: &Path) -> FolderScan {
        let trees = lock(&self.trees);
        match trees.get(folder) {
            Some(Tree { refused: Some(refusal), .. }) => FolderScan::Refused { message: refusal.to_string() },
            Some(Tree { cut: Some(cut), .. }) => FolderScan::CutShort { message: cut.message() },
            _ => FolderScan::Complete,
        }
    }

    /// What the last scan cost, over every folder.
    pub fn last_cost(&self) -> WalkCost {
        let mut total = WalkCost::default();
        for tree in lock(&self.trees).values() {
            total += tree.cost;
        }
        total
    }

    /// Whether `path` is a model of the library (the check every path from the UI passes).
    pub fn contains(&self, path: &Path) -> bool {
        lock(&self.scanned).contains_key(path)
    }

    /// Hashes the files that have no hash yet, one at a time; returns how many it hashed.
    pub fn hash_pending(&self, stop: &dyn Fn() -> bool) -> usize {
        let paths: Vec<PathBuf> = lock(&self.scanned).keys().cloned().collect();
        let mut done = 0;
        for path in paths {
            if stop() {
                break;
            }
            let Some(file) = hashed_file(&path) else { continue };
            if self.hashes.get(&file).is_none() && self.hashes.hash(&file).is_ok() {
                done += 1;
            }
        }
        done
    }

    pub fn pending_hashes(&self) -> u32 {
        let scanned = lock(&self.scanned);
        scanned.keys().filter_map(|p| hashed_file(p)).filter(|f| self.hashes.get(f).is_none()).count() as u32
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    /// Every directory under `dir` an hour old, so their listings are trusted at once (a listing
    /// of a directory changed within the last 2 s is not, walk.rs's RACY).
    fn backdate(dir: &Path) {
        let old = SystemTime::now() - Duration::from_secs(3600);
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                backdate(&entry.path());
            }
        }
        std::fs::File::open(dir).unwrap().set_modified(old).unwrap();
    }

    /// `a/one.pth`, `a/deep/two.pth`, `b/notes.txt`, `.git/index`: four directories walked.
    fn models_folder(dir: &kiln_testdir::TempDir) -> (ModelLibrary, Vec<(PathBuf, FolderKind)>, PathBuf) {
        let root = dir.path().join("models");
        std::fs::create_dir_all(root.join("a/deep")).unwrap();
        std::fs::create_dir_all(root.join("b")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join("a/one.pth"), "x").unwrap();
        std::fs::write(root.join("a/deep/two.pth"), "x").unwrap();
        std::fs::write(root.join("b/notes.txt"), "x").unwrap();
        std::fs::write(root.join(".git/index"), "x").unwrap();
        backdate(&root);
        let root = root.canonicalize().unwrap();
        let library = ModelLibrary::open(dir.path());
        (library, vec![(root.clone(), FolderKind::User)], root)
    }

    #[test]
    fn an_unchanged_tree_is_not_listed_again() {
        let dir = kiln_testdir::TempDir::new();
        let (library, folders, root) = models_folder(&dir);
        assert!(library.scan(&folders, &Recheck::Mtimes));
        assert_eq!(library.last_cost(), WalkCost { listed: 4, checked: 0, stamped: 2 });
        assert!(!library.scan(&folders, &Recheck::Mtimes));
        // Each directory's time read, each model's stamp read, nothing listed.
        assert_eq!(library.last_cost(), WalkCost { listed: 0, checked: 4, stamped: 2 });
        assert!(library.contains(&root.join("a/deep/two.pth")));
        assert_eq!(library.folder_scan(&root), FolderScan::Complete);
    }

    #[test]
    fn a_new_model_is_found_by_its_directory_time_alone() {
        let dir = kiln_testdir::TempDir::new();
        let (library, folders, root) = models_folder(&dir);
        library.scan(&folders, &Recheck::Mtimes);
        std::fs::write(root.join("a/deep/three.safetensors"), "x").unwrap();
        assert!(library.scan(&folders, &Recheck::Mtimes));
        assert_eq!(library.last_cost().listed, 1, "only the directory whose time changed");
        assert!(library.contains(&root.join("a/deep/three.safetensors")));
    }

    #[test]
    fn a_changed_file_is_picked_up_through_its_event_without_a_walk() {
        let dir = kiln_testdir::TempDir::new();
        let (library, folders, root) = models_folder(&dir);
        library.scan(&folders, &Recheck::Mtimes);
        let one = root.join("a/one.pth");
        let before = lock(&library.scanned)[&one].stamp;
        std::fs::write(&one, "a longer file").unwrap();
        assert!(library.scan(&folders, &Recheck::Paths(vec![one.clone()])));
        // Its directory listed again; no other directory's time read.
        assert_eq!(library.last_cost(), WalkCost { listed: 1, checked: 0, stamped: 1 });
        assert_ne!(lock(&library.scanned)[&one].stamp, before);
        // A file arriving in a directory, and a notice from a skipped folder.
        std::fs::write(root.join("b/new.onnx"), "x").unwrap();
        assert!(library.scan(&folders, &Recheck::Paths(vec![root.join("b/new.onnx")])));
        assert_eq!(library.last_cost().listed, 1);
        assert!(library.contains(&root.join("b/new.onnx")));
        assert!(!library.scan(&folders, &Recheck::Paths(vec![root.join(".git/index")])));
        assert_eq!(library.last_cost(), WalkCost::default());
    }

    #[test]
    fn a_scan_cut_short_by_the_file_limit_says_so() {
        let dir = kiln_testdir::TempDir::new();
        let root = dir.path().join("home");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::create_dir_all(root.join("x")).unwrap();
        std::fs::write(root.join("a/found.pth"), "x").unwrap();
        for i in 0..30 {
            std::fs::write(root.join(format!("x/{i}.txt")), "x").unwrap();
        }
        std::fs::write(root.join("x/missed.pth"), "x").unwrap();
        let root = root.canonicalize().unwrap();
        let bounds = Bounds { entries: 10, ..Bounds::default() };
        let library = ModelLibrary::with_bounds(dir.path(), bounds);
        library.scan(&[(root.clone(), FolderKind::User)], &Recheck::Mtimes);
        let FolderScan::CutShort { message } = library.folder_scan(&root) else {
            panic!("not cut short: {:?}", library.folder_scan(&root))
        };
        assert!(message.starts_with("Cut short after 10 files and folders"), "{message}");
        // What was found before the bound is listed.
        assert!(library.contains(&root.join("a/found.pth")));
        assert!(!library.contains(&root.join("x/missed.pth")));
    }

    #[test]
    fn a_refused_folder_from_the_settings_is_not_walked() {
        let dir = kiln_testdir::TempDir::new();
        let library = ModelLibrary::open(dir.path());
        let root = PathBuf::from("/");
        library.scan(&[(root.clone(), FolderKind::User)], &Recheck::Mtimes);
        let FolderScan::Refused { message } = library.folder_scan(&root) else { panic!("/ was scanned") };
        assert!(message.contains("root of a drive"), "{message}");
        assert_eq!(library.last_cost(), WalkCost::default());
    }

    #[test]
    #[cfg(unix)]
    fn a_symlink_loop_is_walked_once_and_system_folders_are_not_followed() {
        let dir = kiln_testdir::TempDir::new();
        let root = dir.path().join("models");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("a/one.pth"), "x").unwrap();
        std::os::unix::fs::symlink(&root, root.join("a/loop")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("a/etc")).unwrap();
        let root = root.canonicalize().unwrap();
        let library = ModelLibrary::open(dir.path());
        library.scan(&[(root.clone(), FolderKind::User)], &Recheck::Mtimes);
        assert_eq!(library.last_cost().listed, 2, "the folder and a/, once each");
        assert_eq!(lock(&library.scanned).len(), 1);
        assert_eq!(library.folder_scan(&root), FolderScan::Complete);
    }
}
