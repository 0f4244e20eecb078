//! Kiln's engine: the devices, models (`library`, `nets`, and the `kiln-models` readers),
//! memory, processing (the job queue) and postprocessing (upscaling) domains; inference to come. No Tauri and no HTTP
//! here: the desktop shell and the `serve` door both call [`api::dispatch`], and Rust callers
//! (the CLI) call the same methods on [`Engine`].
//!
//! Dependency direction: `api` -> `processing` (queue, workers) -> `postprocessing` (steps) ->
//! domains (`devices`, `library`, `memory`) -> `nets` -> `compute` (burn), `kiln-models` and
//! telemetry sources.

pub mod api;
pub mod compute;
pub mod devices;
pub mod engine;
pub mod error;
pub mod events;
pub mod library;
pub mod memory;
pub mod nets;
pub mod postprocessing;
pub mod process;
pub mod processing;
pub mod settings;

/// Log filters for Kiln's binaries when `KILN_LOG` is unset: Kiln's own messages, warnings
/// from libraries, but not the EGL probing errors wgpu prints on machines without OpenGL, nor
/// cubecl's reports of autotune candidates a device cannot compile or run (it skips them;
/// a kernel that fails for real still reaches the caller as a typed error).
pub const LOG_DEFAULTS: &str =
    "warn,kiln=info,wgpu_hal::gles::egl=off,cubecl_runtime::logging=error,cubecl_wgpu::backend::base=off";

/// Model files: readers, detection, hashes (the `kiln-models` crate).
pub use kiln_models as models;

pub use api::{AppInfo, OPERATIONS, Operation, OperationKind, dispatch, operation};
pub use engine::{Engine, EngineOptions};
pub use error::{ApiError, ErrorCode};
pub use events::KilnEvent;
pub use settings::Settings;
