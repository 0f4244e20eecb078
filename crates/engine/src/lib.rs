//! Kiln's engine: the devices domain today, memory, models, processing, inference and
//! postprocessing to come. No Tauri and no HTTP here: the desktop shell and the `serve` door
//! both call [`api::dispatch`], and Rust callers (the CLI) call the same methods on [`Engine`].
//!
//! Dependency direction: `api` -> domains (`devices`) -> `compute` (burn) and telemetry sources.

pub mod api;
pub mod compute;
pub mod devices;
pub mod engine;
pub mod error;
pub mod events;
pub mod settings;

pub use api::{AppInfo, OPERATIONS, Operation, OperationKind, dispatch, operation};
pub use engine::{Engine, EngineOptions};
pub use error::{ApiError, ErrorCode};
pub use events::KilnEvent;
pub use settings::Settings;
