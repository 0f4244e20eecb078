//! A Kiln process's start and end, shared by its binaries (the desktop app, `kiln`): a private
//! runtime folder where the session has none, and an exit that leaves the GPU driver's threads
//! alone ([`crate::Engine::exit`]).

use std::path::{Path, PathBuf};

/// Gives the process a runtime folder of its own (`XDG_RUNTIME_DIR`) where none is set or the
/// one set is unusable, as on a server reached over SSH or in CI. wgpu's OpenGL backend probes
/// Wayland, whose client library otherwise prints `error: XDG_RUNTIME_DIR is invalid or not set
/// in the environment.` twice per engine, before a normal start's first line. Returns the
/// folder it set, if it set one.
///
/// Call it first thing in `main`, before any thread starts: it changes the environment.
pub fn ensure_runtime_dir() -> Option<PathBuf> {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|dir| usable(Path::new(&dir))) {
        return None;
    }
    let dir = private_dir()?;
    // SAFETY: documented as called before any thread exists, so nothing reads the environment
    // while it changes.
    unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
    Some(dir)
}

/// A folder that is ours alone: a directory (not a link) owned by this user, mode 0700.
#[cfg(unix)]
fn usable(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    dir.is_absolute()
        && std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o777 == 0o700)
}

#[cfg(not(unix))]
fn usable(_: &Path) -> bool {
    true
}

/// `<temp>/kiln-runtime-<uid>`, made 0700 if missing; a fresh `-<pid>` one if another user
/// got that name first.
#[cfg(unix)]
fn private_dir() -> Option<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let base = std::env::temp_dir().join(format!("kiln-runtime-{uid}"));
    let fallback = std::env::temp_dir().join(format!("kiln-runtime-{uid}-{}", std::process::id()));
    [base, fallback].into_iter().find(|dir| {
        let _ = std::fs::DirBuilder::new().mode(0o700).create(dir);
        usable(dir)
    })
}

#[cfg(not(unix))]
fn private_dir() -> Option<PathBuf> {
    None
}

/// Resolves on Ctrl+C (SIGINT), or SIGTERM from a service or session manager or a test
/// harness: what makes `kiln serve` and the desktop app end through [`crate::Engine::exit`].
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Ends the process with `code` once stdout and stderr are flushed, without the C library's
/// exit handlers (see [`crate::Engine::exit`]; this is for a process that holds no engine).
pub fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    #[cfg(unix)]
    // SAFETY: `_exit` ends the process at once; callers have flushed what must outlive it (the
    // output above; the queue's transactions are committed).
    unsafe {
        libc::_exit(code)
    }
    #[cfg(not(unix))]
    std::process::exit(code)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_a_private_folder_of_ours_is_usable() {
        let dir = kiln_testdir::TempDir::new();
        let private = dir.path().join("run");
        std::fs::create_dir(&private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(usable(&private));
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(!usable(&private), "readable by others");
        assert!(!usable(Path::new("relative/run")));
        assert!(!usable(&dir.path().join("missing")));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&private, &link).unwrap();
        assert!(!usable(&link), "a link may point anywhere");
        let made = private_dir().expect("a private folder in the temp folder");
        assert!(usable(&made), "{}", made.display());
    }
}
