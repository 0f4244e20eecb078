//! Which folders the library refuses: a file system's root, the pseudo-file systems the kernel
//! makes up (`/proc`, `/sys`, `/dev`, `/run`), and the operating system's own folders, on Linux,
//! macOS and Windows (issue 16: `models.add_folder` took `/`, and Kiln then walked `/proc` every
//! 10 s).
//!
//! The rules are pure functions over a canonical path's text with the platform as an argument,
//! so Linux runs the Windows and macOS cases too; [`check`] applies the running platform's rules
//! and, on Linux, the type of the file system the folder is mounted on (`/proc/self/mountinfo`),
//! which catches a `proc` or `sysfs` mounted somewhere else (a chroot's `/proc` in a home folder).
//!
//! What stays allowed, and why: home folders (`/home/...`, `/root`, `C:\Users\...`, `/Users/...`)
//! and the home folder itself (many users keep models in `~/models`; a whole home folder is big,
//! but the scan's bound in `walk.rs` stops it), `/mnt`, `/media`, `/srv`, `/opt`, `/data`, `/tmp`,
//! and drives mounted there or under `/Volumes` (a disk given to models is usually mounted as one).
//! Some system folders are refused only as themselves, not what is under them: packages put
//! models below `/usr/share` (`/usr/share/ollama`), `/usr/local`, `C:\Program Files` (Upscayl's
//! bundled models) or `C:\ProgramData`, and servers keep data below `/var` (`/var/lib/docker`), so
//! a folder there is a choice the user made; the folder itself is every package's files at once.

use std::path::{Path, PathBuf};

use crate::error::{ApiError, ErrorCode};

/// Whose rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Linux,
    MacOs,
    Windows,
}

impl Platform {
    /// The platform Kiln was built for (other Unix systems take Linux's rules).
    pub const CURRENT: Platform = if cfg!(windows) {
        Platform::Windows
    } else if cfg!(target_os = "macos") {
        Platform::MacOs
    } else {
        Platform::Linux
    };
}

/// Why a folder cannot be one of the library's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "{path} is the root of a drive: Kiln would read every file on it and watch them all. Add the folder that holds your models instead."
    )]
    Root { path: String },
    #[error(
        "{path} is on {file_system}, a file system the kernel makes up: it holds no models, and reading it reads live system state. Add a folder of your own."
    )]
    PseudoFileSystem { path: String, file_system: String },
    #[error("{path} is {what}: it holds the operating system's files, not models. Add a folder of your own.")]
    SystemFolder { path: String, what: &'static str },
}

impl Refusal {
    /// A stable word for the UI and scripts (`details.reason`).
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Root { .. } => "root",
            Refusal::PseudoFileSystem { .. } => "pseudo_file_system",
            Refusal::SystemFolder { .. } => "system_folder",
        }
    }
}

/// Why a folder the user named cannot be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FolderError {
    #[error("{path} is not a folder")]
    NotAFolder { path: String },
    #[error(transparent)]
    Refused(#[from] Refusal),
}

impl From<FolderError> for ApiError {
    fn from(error: FolderError) -> Self {
        match &error {
            FolderError::NotAFolder { path } => {
                ApiError::new(ErrorCode::NotFound, error.to_string()).with_details(serde_json::json!({ "path": path }))
            }
            FolderError::Refused(refusal) => ApiError::new(ErrorCode::InvalidInput, error.to_string())
                .with_details(serde_json::json!({ "reason": refusal.reason() })),
        }
    }
}

/// The folder `path` names, canonical, if the library may have it.
pub fn check(path: &Path) -> Result<PathBuf, FolderError> {
    let not_a_folder = || FolderError::NotAFolder { path: path.display().to_string() };
    let canonical = path.canonicalize().map_err(|_| not_a_folder())?;
    if !canonical.is_dir() {
        return Err(not_a_folder());
    }
    refusal_at(&canonical, &MountTable::read()).map_or(Ok(canonical), |r| Err(r.into()))
}

/// Why the canonical folder `path` is refused, by the running platform's rules and the mount
/// table, if it is.
pub(crate) fn refusal_at(path: &Path, mounts: &MountTable) -> Option<Refusal> {
    let text = path.to_string_lossy();
    refusal(&text, Platform::CURRENT).or_else(|| mounts.pseudo_file_system(&text))
}

/// The mount table, read once where a check needs it (Linux; elsewhere empty).
pub(crate) struct MountTable(String);

impl MountTable {
    pub(crate) fn read() -> Self {
        // Elsewhere there is no mountinfo to read; the path rules carry the check.
        let text = if cfg!(target_os = "linux") {
            std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()
        } else {
            String::new()
        };
        Self(text)
    }

    fn pseudo_file_system(&self, path: &str) -> Option<Refusal> {
        pseudo_mount(path, &self.0)
    }
}

/// Refused with everything under them: pseudo-file systems (by their usual place) and folders
/// of the system's own files that no package puts models in.
const UNIX_SUBTREES: &[(&str, Kind)] = &[
    ("/proc", Kind::Pseudo("proc, the kernel's process table")),
    ("/sys", Kind::Pseudo("sysfs, the kernel's device tree")),
    ("/dev", Kind::Pseudo("the device file system")),
    ("/run", Kind::Pseudo("tmpfs for the system's runtime state (/run)")),
    ("/boot", Kind::System("the boot folder")),
    ("/etc", Kind::System("the system's configuration folder")),
    ("/bin", Kind::System("a folder of system programs")),
    ("/sbin", Kind::System("a folder of system programs")),
    ("/usr/bin", Kind::System("a folder of system programs")),
    ("/usr/sbin", Kind::System("a folder of system programs")),
    ("/var/log", Kind::System("the system's log folder")),
    ("/var/cache", Kind::System("the system's cache folder")),
    ("/var/spool", Kind::System("the system's spool folder")),
    ("/var/run", Kind::Pseudo("tmpfs for the system's runtime state (/var/run)")),
    ("/var/lock", Kind::Pseudo("tmpfs for the system's lock files (/var/lock)")),
    ("/lost+found", Kind::System("the file system's recovery folder")),
];

/// Refused as themselves only (see the file's header for why what is under them stays allowed).
const UNIX_FOLDERS: &[(&str, &str)] = &[
    ("/usr", "the system's programs and libraries"),
    ("/usr/lib", "the system's libraries"),
    ("/usr/lib32", "the system's libraries"),
    ("/usr/lib64", "the system's libraries"),
    ("/usr/libx32", "the system's libraries"),
    ("/usr/libexec", "the system's helper programs"),
    ("/usr/share", "every package's shared files"),
    ("/usr/local", "the locally installed programs"),
    ("/usr/src", "the system's source folder"),
    ("/lib", "the system's libraries"),
    ("/lib32", "the system's libraries"),
    ("/lib64", "the system's libraries"),
    ("/libx32", "the system's libraries"),
    ("/var", "the system's variable data"),
    ("/var/lib", "every service's state"),
];

/// macOS: `/etc`, `/var` and `/tmp` are links into `/private`, so canonical paths name that.
const MACOS_SUBTREES: &[(&str, Kind)] = &[
    ("/System", Kind::System("macOS's system folder")),
    ("/private/etc", Kind::System("the system's configuration folder")),
    ("/private/var/db", Kind::System("the system's databases")),
    ("/private/var/log", Kind::System("the system's log folder")),
    ("/private/var/vm", Kind::System("the system's swap folder")),
    ("/private/var/run", Kind::System("the system's runtime state")),
    ("/cores", Kind::System("the system's crash dumps")),
];

const MACOS_FOLDERS: &[(&str, &str)] = &[
    ("/Library", "the system's library folder"),
    ("/Applications", "the applications folder"),
    ("/Volumes", "the folder of every mounted drive"),
    ("/private", "the system's private folder"),
    ("/private/var", "the system's variable data"),
];

/// Windows, below a drive letter, compared without case.
const WINDOWS_SUBTREES: &[(&str, &str)] = &[
    ("windows", "Windows' own folder"),
    ("$recycle.bin", "the recycle bin"),
    ("system volume information", "Windows' restore points"),
    ("recovery", "Windows' recovery folder"),
];

const WINDOWS_FOLDERS: &[(&str, &str)] = &[
    ("program files", "the folder of every installed program"),
    ("program files (x86)", "the folder of every installed program"),
    ("programdata", "every program's shared data"),
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Pseudo(&'static str),
    System(&'static str),
}

/// File system types the kernel makes up. `tmpfs` is not among them: `/tmp` is tmpfs on many
/// systems and a folder there is the user's; `/run`, tmpfs too, is refused by its path.
const PSEUDO_TYPES: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "pstore",
    "bpf",
    "configfs",
    "fusectl",
    "mqueue",
    "hugetlbfs",
    "binfmt_misc",
    "efivarfs",
    "selinuxfs",
    "rpc_pipefs",
    "nsfs",
];

/// Why the canonical path `path` is refused on `platform`, by its path alone.
pub fn refusal(path: &str, platform: Platform) -> Option<Refusal> {
    match platform {
        Platform::Windows => windows_refusal(path),
        Platform::Linux => unix_refusal(path, &[UNIX_SUBTREES], &[UNIX_FOLDERS]),
        Platform::MacOs => unix_refusal(path, &[UNIX_SUBTREES, MACOS_SUBTREES], &[UNIX_FOLDERS, MACOS_FOLDERS]),
    }
}

fn unix_refusal(path: &str, subtrees: &[&[(&str, Kind)]], folders: &[&[(&str, &'static str)]]) -> Option<Refusal> {
    let trimmed = path.trim_end_matches('/');
    let owned = || path.to_owned();
    if trimmed.is_empty() {
        return Some(Refusal::Root { path: owned() });
    }
    let under = |top: &str| trimmed == top || trimmed.strip_prefix(top).is_some_and(|rest| rest.starts_with('/'));
    if let Some((_, kind)) = subtrees.iter().flat_map(|s| s.iter()).find(|(top, _)| under(top)) {
        return Some(match *kind {
            Kind::Pseudo(file_system) => {
                Refusal::PseudoFileSystem { path: owned(), file_system: file_system.to_owned() }
            }
            Kind::System(what) => Refusal::SystemFolder { path: owned(), what },
        });
    }
    let &(_, what) = folders.iter().flat_map(|f| f.iter()).find(|(folder, _)| trimmed == *folder)?;
    Some(Refusal::SystemFolder { path: owned(), what })
}

fn windows_refusal(path: &str) -> Option<Refusal> {
    // Canonical paths on Windows carry the verbatim prefix: `\\?\C:\...`, `\\?\UNC\server\...`.
    let text = path.strip_prefix(r"\\?\").unwrap_or(path).replace('/', "\\");
    let owned = || path.to_owned();
    let bytes = text.as_bytes();
    // A network share (`\\server\share`, `UNC\...`) is the share the user chose: allowed.
    if bytes.len() < 2 || !bytes[0].is_ascii_alphabetic() || bytes[1] != b':' {
        return None;
    }
    let rest = text[2..].trim_matches('\\').to_lowercase();
    if rest.is_empty() {
        return Some(Refusal::Root { path: owned() });
    }
    let top = rest.split('\\').next().unwrap_or_default();
    if let Some(&(_, what)) = WINDOWS_SUBTREES.iter().find(|(name, _)| top == *name) {
        return Some(Refusal::SystemFolder { path: owned(), what });
    }
    let &(_, what) = WINDOWS_FOLDERS.iter().find(|(name, _)| rest == *name)?;
    Some(Refusal::SystemFolder { path: owned(), what })
}

/// The pseudo-file system `path` lies on, from the text of `/proc/self/mountinfo`: the mount
/// with the longest mount point above `path` (the last such line, as later mounts cover earlier
/// ones at the same place).
pub fn pseudo_mount(path: &str, mountinfo: &str) -> Option<Refusal> {
    let mut best: Option<(usize, &str)> = None;
    for line in mountinfo.lines() {
        // `36 35 98:0 /root /mnt/point rw,noatime master:1 - ext3 /dev/root rw`: the mount point
        // is the fifth field; the type follows the ` - ` separator.
        let Some((fields, after)) = line.split_once(" - ") else { continue };
        let (Some(point), Some(fs_type)) = (fields.split(' ').nth(4), after.split(' ').next()) else { continue };
        let point = unescape(point);
        let point = point.trim_end_matches('/');
        let above = path == point || path.strip_prefix(point).is_some_and(|rest| rest.starts_with('/'));
        if above && best.is_none_or(|(len, _)| point.len() >= len) {
            best = Some((point.len(), fs_type));
        }
    }
    let (_, fs_type) = best?;
    PSEUDO_TYPES
        .contains(&fs_type)
        .then(|| Refusal::PseudoFileSystem { path: path.to_owned(), file_system: fs_type.to_owned() })
}

/// Mountinfo writes space, tab, newline and backslash as octal escapes (`\040`).
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 4).and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match code {
            Some(byte) => {
                out.push(byte as char);
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(path: &str, platform: Platform) -> String {
        refusal(path, platform).map(|r| r.to_string()).unwrap_or_else(|| panic!("{path} was allowed"))
    }

    #[test]
    fn the_root_and_pseudo_file_systems_are_refused_with_a_message() {
        let root = refused("/", Platform::Linux);
        assert!(root.contains("root of a drive") && root.contains("Add the folder"), "{root}");
        let proc = refused("/proc/self", Platform::Linux);
        assert!(proc.starts_with("/proc/self is on proc"), "{proc}");
        for path in ["/proc", "/sys", "/sys/class/drm", "/dev", "/run", "/run/user/1000"] {
            assert_eq!(refusal(path, Platform::Linux).unwrap().reason(), "pseudo_file_system", "{path}");
        }
        assert!(refused("C:\\", Platform::Windows).contains("root of a drive"));
        assert!(refused(r"\\?\D:\", Platform::Windows).contains("root of a drive"));
        assert!(refused("/", Platform::MacOs).contains("root of a drive"));
    }

    #[test]
    fn system_folders_are_refused() {
        for path in
            ["/etc", "/etc/ssl", "/usr", "/usr/bin", "/usr/share", "/lib64", "/boot/efi", "/var", "/var/log/apt"]
        {
            let message = refused(path, Platform::Linux);
            assert!(message.contains("operating system's files"), "{message}");
        }
        for path in [
            r"C:\Windows",
            r"\\?\C:\Windows\System32",
            r"C:\Program Files",
            r"c:\program files (x86)\",
            r"C:\ProgramData",
        ] {
            assert_eq!(refusal(path, Platform::Windows).unwrap().reason(), "system_folder", "{path}");
        }
        for path in ["/System/Library", "/Library", "/private/var", "/private/etc/hosts", "/Volumes", "/usr/sbin"] {
            assert_eq!(refusal(path, Platform::MacOs).unwrap().reason(), "system_folder", "{path}");
        }
    }

    #[test]
    fn home_data_and_package_folders_stay_allowed() {
        for path in [
            "/home/ada/models",
            "/home/ada",
            "/home",
            "/root/models",
            "/mnt/disk",
            "/media/ada/usb/models",
            "/srv/models",
            "/opt/models",
            "/data/models",
            "/tmp/kiln-test-1",
            "/var/lib/docker/volumes/models/_data",
            "/usr/share/ollama/models",
            "/usr/local/share/models",
            "/procedures",
            "/devices/models",
        ] {
            assert_eq!(refusal(path, Platform::Linux), None, "{path}");
        }
        for path in [
            r"C:\Users\ada\models",
            r"\\?\D:\models",
            r"C:\Program Files\Upscayl\resources\models",
            r"\\server\share",
            r"\\?\UNC\nas\models",
        ] {
            assert_eq!(refusal(path, Platform::Windows), None, "{path}");
        }
        for path in ["/Users/ada/models", "/Volumes/Models", "/private/var/folders/x/T/kiln", "/opt/homebrew/models"] {
            assert_eq!(refusal(path, Platform::MacOs), None, "{path}");
        }
    }

    const MOUNTINFO: &str = "\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
23 28 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw
28 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
40 28 0:40 / /tmp rw,nosuid,nodev shared:20 - tmpfs tmpfs rw
90 28 0:22 / /home/ada/chroot/proc rw,relatime - proc proc rw
91 28 8:17 / /home/ada/my\\040disk rw,relatime - ext4 /dev/sdb1 rw
";

    #[test]
    fn a_pseudo_file_system_mounted_elsewhere_is_refused_by_its_type() {
        let chroot = pseudo_mount("/home/ada/chroot/proc/1", MOUNTINFO).unwrap();
        assert_eq!(chroot.reason(), "pseudo_file_system");
        assert!(chroot.to_string().contains("on proc"), "{chroot}");
        assert_eq!(pseudo_mount("/home/ada/chroot", MOUNTINFO), None);
        assert_eq!(pseudo_mount("/home/ada/my disk/models", MOUNTINFO), None);
        assert_eq!(pseudo_mount("/tmp/models", MOUNTINFO), None, "tmpfs at /tmp is the user's");
        assert_eq!(pseudo_mount("/sys/kernel", MOUNTINFO).unwrap().reason(), "pseudo_file_system");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn adding_a_refused_folder_is_invalid_input_naming_the_reason() {
        let error = ApiError::from(check(Path::new("/proc/self/..")).unwrap_err());
        assert_eq!(error.code, ErrorCode::InvalidInput);
        assert!(error.message.contains("/proc"), "{}", error.message);
        assert_eq!(error.details.unwrap()["reason"], "pseudo_file_system");
        let missing = ApiError::from(check(Path::new("/no/such/folder/here")).unwrap_err());
        assert_eq!(missing.code, ErrorCode::NotFound);
        let dir = kiln_testdir::TempDir::new();
        assert_eq!(check(dir.path()).unwrap(), dir.path().canonicalize().unwrap());
    }
}
