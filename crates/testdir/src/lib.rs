//! Temporary folders for tests, removed when dropped.
//!
//! Kiln's tests use this instead of the `tempfile` crate: `tempfile` turns on `std` in
//! `bitflags` (through `rustix`), which changes the features of nearly every crate burn and
//! wgpu build on, so a test build and an app build would each compile burn once.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A fresh, empty folder under the system's temporary folder.
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    pub fn new() -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "kiln-test-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create a temporary folder");
        Self { path, keep: false }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the folder in place when dropped, and returns its path.
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn folders_are_fresh_and_removed() {
        let dir = super::TempDir::new();
        let path = dir.path().to_path_buf();
        assert!(path.is_dir());
        assert_ne!(path, super::TempDir::new().path());
        drop(dir);
        assert!(!path.exists());
    }
}
