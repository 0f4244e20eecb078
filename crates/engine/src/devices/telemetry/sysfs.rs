//! Small readers for sysfs and procfs attribute files: one value per file, text, newline-ended.

use std::path::{Path, PathBuf};

/// Where Kiln reads `/sys` and `/proc` from. Tests point these at fixture trees laid out like
/// real machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemRoots {
    pub sys: PathBuf,
    pub proc: PathBuf,
}

impl Default for SystemRoots {
    fn default() -> Self {
        Self { sys: PathBuf::from("/sys"), proc: PathBuf::from("/proc") }
    }
}

impl SystemRoots {
    /// `/sys` and `/proc` under one fixture directory.
    pub fn under(root: &Path) -> Self {
        Self { sys: root.join("sys"), proc: root.join("proc") }
    }
}

/// The file's text without surrounding whitespace; `None` if missing, unreadable or empty.
pub fn read_trimmed(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

pub fn read_u64(path: &Path) -> Option<u64> {
    read_trimmed(path)?.parse().ok()
}

/// A `0x`-prefixed hexadecimal value, as in PCI `vendor` and `device` files.
pub fn read_hex(path: &Path) -> Option<u32> {
    let text = read_trimmed(path)?;
    u32::from_str_radix(text.trim_start_matches("0x"), 16).ok()
}

/// `KEY=value` lines, as in `uevent` files.
pub fn read_key_values(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// PCIe generation from a link speed such as `16.0 GT/s PCIe` or `8 GT/s`.
pub fn pcie_generation(speed: &str) -> Option<u32> {
    let gts: f64 = speed.split_whitespace().next()?.parse().ok()?;
    Some(match gts {
        s if s < 3.0 => 1,
        s if s < 6.0 => 2,
        s if s < 12.0 => 3,
        s if s < 24.0 => 4,
        s if s < 48.0 => 5,
        s if s < 96.0 => 6,
        _ => 7,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_speeds_map_to_generations() {
        assert_eq!(pcie_generation("2.5 GT/s PCIe"), Some(1));
        assert_eq!(pcie_generation("8.0 GT/s PCIe"), Some(3));
        assert_eq!(pcie_generation("16.0 GT/s PCIe"), Some(4));
        assert_eq!(pcie_generation("32.0 GT/s PCIe"), Some(5));
        assert_eq!(pcie_generation("Unknown"), None);
    }

    #[test]
    fn reads_hex_and_decimal() {
        let dir = kiln_testdir::TempDir::new();
        std::fs::write(dir.path().join("vendor"), "0x1002\n").unwrap();
        std::fs::write(dir.path().join("n"), " 42 \n").unwrap();
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        assert_eq!(read_hex(&dir.path().join("vendor")), Some(0x1002));
        assert_eq!(read_u64(&dir.path().join("n")), Some(42));
        assert_eq!(read_trimmed(&dir.path().join("empty")), None);
        assert_eq!(read_u64(&dir.path().join("missing")), None);
    }
}
