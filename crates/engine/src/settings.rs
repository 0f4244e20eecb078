//! Settings people change and expect to find again: persisted as JSON in Kiln's data folder,
//! validated before they apply, written atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::devices::HealthThresholds;
use crate::error::{ApiError, ErrorCode};

/// Every setting.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, TS)]
#[serde(default)]
pub struct Settings {
    pub telemetry: TelemetrySettings,
    pub health: HealthThresholds,
    pub models: ModelSettings,
    pub memory: crate::memory::MemorySettings,
    pub processing: crate::processing::ops::ProcessingSettings,
}

/// Where Kiln looks for models beyond its own folder and the bundled ones.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
#[serde(default)]
pub struct ModelSettings {
    /// Folders the user added, canonical paths.
    pub folders: Vec<String>,
}

/// How often devices are sampled and how much history is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(default)]
pub struct TelemetrySettings {
    /// Milliseconds between samples (100 to 60000).
    pub interval_ms: u32,
    /// Minutes of history kept per device (10 to 1440).
    pub history_minutes: u32,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self { interval_ms: 1000, history_minutes: 15 }
    }
}

impl TelemetrySettings {
    /// Rows each device's ring buffer holds.
    pub fn history_rows(&self) -> usize {
        (self.history_minutes as u64 * 60_000 / self.interval_ms.max(1) as u64) as usize
    }
}

impl Settings {
    pub fn validate(&self) -> Result<(), ApiError> {
        let t = &self.telemetry;
        if !(100..=60_000).contains(&t.interval_ms) {
            return Err(ApiError::invalid_input(format!(
                "the sampling interval must be 100 to 60000 ms, not {}",
                t.interval_ms
            )));
        }
        if !(10..=1440).contains(&t.history_minutes) {
            return Err(ApiError::invalid_input(format!(
                "history must be kept for 10 to 1440 minutes, not {}",
                t.history_minutes
            )));
        }
        if t.history_rows() > 200_000 {
            return Err(ApiError::invalid_input(format!(
                "{} minutes at {} ms is {} samples per device; keep it under 200000",
                t.history_minutes,
                t.interval_ms,
                t.history_rows()
            )));
        }
        self.memory.validate()?;
        self.processing.validate()?;
        self.health.validate()
    }
}

/// Where settings live on disk.
#[derive(Debug, Clone)]
pub struct SettingsFile {
    path: PathBuf,
}

impl SettingsFile {
    pub fn new(data_dir: &Path) -> Self {
        Self { path: data_dir.join("settings.json") }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved settings, or the defaults when there are none. A file that does not parse is
    /// kept beside as `settings.json.bad` (so nothing the user wrote is lost) and the defaults
    /// apply.
    pub fn load(&self) -> Settings {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(_) => return Settings::default(),
        };
        match serde_json::from_str::<Settings>(&text).map_err(|e| e.to_string()).and_then(|s| {
            s.validate().map_err(|e| e.message)?;
            Ok(s)
        }) {
            Ok(settings) => settings,
            Err(error) => {
                let aside = self.path.with_extension("json.bad");
                tracing::warn!(
                    "{} is not valid ({error}); using defaults and keeping it as {}",
                    self.path.display(),
                    aside.display()
                );
                let _ = std::fs::rename(&self.path, aside);
                Settings::default()
            }
        }
    }

    /// Writes through a temporary file and a rename, so a crash leaves the old or the new file.
    pub fn save(&self, settings: &Settings) -> Result<(), ApiError> {
        let io =
            |e: std::io::Error| ApiError::new(ErrorCode::Io, format!("could not save {}: {e}", self.path.display()));
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(settings).map_err(|e| ApiError::internal(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let dir = kiln_testdir::TempDir::new();
        let file = SettingsFile::new(dir.path());
        assert_eq!(file.load(), Settings::default());
        let mut settings = Settings::default();
        settings.telemetry.interval_ms = 500;
        settings.validate().unwrap();
        file.save(&settings).unwrap();
        assert_eq!(file.load(), settings);
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let mut settings = Settings::default();
        settings.telemetry.interval_ms = 5;
        assert_eq!(settings.validate().unwrap_err().code, ErrorCode::InvalidInput);
        settings.telemetry.interval_ms = 100;
        settings.telemetry.history_minutes = 1440;
        assert!(settings.validate().unwrap_err().message.contains("200000"));
    }

    #[test]
    fn a_corrupt_file_is_kept_aside_and_defaults_apply() {
        let dir = kiln_testdir::TempDir::new();
        let file = SettingsFile::new(dir.path());
        std::fs::write(file.path(), "{ not json").unwrap();
        assert_eq!(file.load(), Settings::default());
        assert_eq!(std::fs::read_to_string(dir.path().join("settings.json.bad")).unwrap(), "{ not json");
    }

    #[test]
    fn missing_fields_take_defaults() {
        let settings: Settings = serde_json::from_str(r#"{"telemetry":{"interval_ms":2000}}"#).unwrap();
        assert_eq!(settings.telemetry.interval_ms, 2000);
        assert_eq!(settings.telemetry.history_minutes, 15);
    }
}
