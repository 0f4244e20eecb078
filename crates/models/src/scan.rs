//! Finding model files under folders: every recognised file (`.safetensors`, `.pth`, `.pt`,
//! `.ckpt`, `.param`, `.onnx`) and every diffusers folder, each read and identified. Unreadable
//! files are listed with their error rather than dropped.

use std::path::{Path, PathBuf};

use super::formats::ModelFormat;
use super::{ModelError, ModelInfo, inspect};

/// Deepest folder nesting searched (model folders are shallow; this stops symlink loops).
const MAX_DEPTH: usize = 8;

/// Folders no walk enters: hidden ones (`.git`, `.cache`, `.venv`), and the package and byte-code
/// folders of JavaScript and Python projects (`node_modules`, `__pycache__`), which hold
/// thousands of files and never a model; a user who adds a projects folder pays nothing for them.
pub fn skipped(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with('.') || name == "node_modules" || name == "__pycache__"
}

/// Model paths under `root`, sorted: files by extension, diffusers folders as one entry.
pub fn find(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    walk(root, 0, &mut found);
    found.sort();
    found
}

fn walk(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
    if depth > MAX_DEPTH {
        return;
    }
    if ModelFormat::of_path(dir) == Some(ModelFormat::Diffusers) {
        found.push(dir.to_path_buf());
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if skipped(&entry.file_name()) {
            continue;
        }
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => walk(&path, depth + 1, found),
            Ok(_) if ModelFormat::of_path(&path).is_some() => found.push(path),
            _ => {}
        }
    }
}

/// Every model under `root`, identified, or the reason it could not be.
pub fn scan(root: &Path) -> Vec<Result<ModelInfo, ModelError>> {
    find(root).iter().map(|path| inspect(path)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_models_and_diffusers_folders_and_skips_hidden_and_package_folders() {
        let dir = kiln_testdir::TempDir::new();
        let root = dir.path();
        std::fs::create_dir_all(root.join("upscalers/.cache")).unwrap();
        std::fs::create_dir_all(root.join("app/node_modules/pkg")).unwrap();
        std::fs::write(root.join("app/node_modules/pkg/d.onnx"), "x").unwrap();
        std::fs::create_dir_all(root.join("sdxl/unet")).unwrap();
        std::fs::write(root.join("sdxl/model_index.json"), "{}").unwrap();
        std::fs::write(root.join("sdxl/unet/diffusion_pytorch_model.safetensors"), "x").unwrap();
        std::fs::write(root.join("upscalers/a.pth"), "x").unwrap();
        std::fs::write(root.join("upscalers/b.param"), "x").unwrap();
        std::fs::write(root.join("upscalers/b.bin"), "x").unwrap();
        std::fs::write(root.join("upscalers/.cache/c.safetensors"), "x").unwrap();
        std::fs::write(root.join("notes.txt"), "x").unwrap();
        let names: Vec<String> =
            find(root).iter().map(|p| p.strip_prefix(root).unwrap().display().to_string()).collect();
        assert_eq!(names, vec!["sdxl", "upscalers/a.pth", "upscalers/b.param"]);
        // Garbage files are listed with a typed error naming them.
        let results = scan(root);
        assert!(results.iter().filter(|r| r.is_err()).all(|r| r.as_ref().unwrap_err().path.starts_with(root)));
    }
}
