//! File hashes as model sites show them: the SHA-256 of the whole file and its first ten hex
//! digits, the "AutoV2" hash A1111 and Civitai print. Hashing a 7 GB checkpoint takes seconds,
//! so results are cached by path, size and modification time.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// SHA-256 of a file, lowercase hex, read in 1 MiB chunks.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The AutoV2 short hash of a full SHA-256.
pub fn autov2(sha256: &str) -> String {
    sha256.chars().take(10).collect()
}

/// What identifies one version of a file: its size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    pub size: u64,
    pub modified_ns: u128,
}

impl FileStamp {
    pub fn of(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        let modified_ns = meta.modified()?.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Ok(Self { size: meta.len(), modified_ns })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached {
    stamp: FileStamp,
    sha256: String,
}

/// Hashes already computed, persisted as JSON in Kiln's data folder.
pub struct HashCache {
    file: PathBuf,
    entries: Mutex<HashMap<PathBuf, Cached>>,
}

impl HashCache {
    /// Loads the cache; an unreadable cache starts empty (it only saves time).
    pub fn open(file: PathBuf) -> Self {
        let entries =
            std::fs::read_to_string(&file).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        Self { file, entries: Mutex::new(entries) }
    }

    /// The cached hash if the file has not changed since.
    pub fn get(&self, path: &Path) -> Option<String> {
        let stamp = FileStamp::of(path).ok()?;
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(path).filter(|c| c.stamp == stamp).map(|c| c.sha256.clone())
    }

    /// Hashes the file (or returns the cached hash) and remembers it.
    pub fn hash(&self, path: &Path) -> std::io::Result<String> {
        if let Some(hash) = self.get(path) {
            return Ok(hash);
        }
        let before = FileStamp::of(path)?;
        let sha256 = sha256_file(path)?;
        // A file that changed while being read gets no cache entry.
        if FileStamp::of(path)? == before {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries.insert(path.to_path_buf(), Cached { stamp: before, sha256: sha256.clone() });
            self.save(&entries);
        }
        Ok(sha256)
    }

    fn save(&self, entries: &HashMap<PathBuf, Cached>) {
        let Ok(text) = serde_json::to_string(entries) else { return };
        let tmp = self.file.with_extension("json.tmp");
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, &self.file);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_and_autov2() {
        let dir = kiln_testdir::TempDir::new();
        let path = dir.path().join("abc");
        std::fs::write(&path, "abc").unwrap();
        let sha = sha256_file(&path).unwrap();
        assert_eq!(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(autov2(&sha), "ba7816bf8f");
    }

    #[test]
    fn the_cache_survives_restarts_and_notices_changes() {
        let dir = kiln_testdir::TempDir::new();
        let model = dir.path().join("m.safetensors");
        std::fs::write(&model, "first").unwrap();
        let cache = HashCache::open(dir.path().join("hashes.json"));
        let first = cache.hash(&model).unwrap();
        assert_eq!(HashCache::open(dir.path().join("hashes.json")).get(&model), Some(first.clone()));
        std::fs::write(&model, "second, longer").unwrap();
        let again = HashCache::open(dir.path().join("hashes.json"));
        assert_eq!(again.get(&model), None, "a changed file is hashed again");
        assert_ne!(again.hash(&model).unwrap(), first);
    }
}
