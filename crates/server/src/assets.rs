//! The web UI's files: embedded at build time from `ui/dist`, or read from a folder given at
//! run time (`--ui-dir`, for working on the UI without rebuilding Kiln).

use std::borrow::Cow;
use std::path::PathBuf;

include!(concat!(env!("OUT_DIR"), "/ui_files.rs"));

/// Where pages come from.
#[derive(Debug, Clone, Default)]
pub enum UiSource {
    #[default]
    Embedded,
    Folder(PathBuf),
}

impl UiSource {
    /// The file for a URL path (`/` is `index.html`); `None` when there is no such file.
    pub fn get(&self, path: &str) -> Option<Cow<'static, [u8]>> {
        let path = if path == "/" { "/index.html" } else { path };
        match self {
            Self::Embedded => UI_FILES.iter().find(|(route, _)| *route == path).map(|(_, bytes)| Cow::Borrowed(*bytes)),
            Self::Folder(root) => {
                // Only plain names: no `..`, no roots, no Windows drive or UNC prefixes.
                let relative = std::path::Path::new(path.trim_start_matches('/'));
                let plain = relative.components().all(|c| matches!(c, std::path::Component::Normal(_)));
                if !plain || path.contains(['\\', ':']) || path.contains("//") {
                    return None;
                }
                std::fs::read(root.join(relative)).ok().map(Cow::Owned)
            }
        }
    }

    /// Whether any UI is available at all.
    pub fn is_built(&self) -> bool {
        match self {
            Self::Embedded => !UI_FILES.is_empty(),
            Self::Folder(root) => root.join("index.html").is_file(),
        }
    }
}

pub fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_refuse_paths_that_climb_out() {
        let dir = kiln_testdir::TempDir::new();
        std::fs::write(dir.path().join("index.html"), "<p>hi</p>").unwrap();
        let ui = UiSource::Folder(dir.path().join("."));
        assert_eq!(ui.get("/").as_deref(), Some(&b"<p>hi</p>"[..]));
        assert!(ui.get("/../etc/passwd").is_none());
        assert!(ui.get("/a/../../x").is_none());
        assert!(ui.get("//etc/passwd").is_none());
        assert!(ui.get("/C:/Windows/win.ini").is_none());
        assert!(ui.get("/a\\..\\b").is_none());
        assert!(ui.is_built());
    }
}
