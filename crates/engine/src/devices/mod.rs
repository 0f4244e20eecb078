//! The devices domain: discovery, telemetry, history, health, recommendations, benchmarks,
//! pool release and power limits.

pub mod device;
pub mod discovery;
pub mod health;
pub mod history;
pub mod ops;
pub mod optimize;
pub mod peaks;
pub mod power;
pub mod sampler;
pub mod status;
pub mod telemetry;

pub use device::{
    Adapter, AdapterFeatures, AdapterLimits, Device, DeviceId, DeviceKind, GraphicsBackend, SourceState, Vendor,
};
pub use health::{DeviceHealth, HealthLevel, HealthReason, HealthThresholds};
pub use history::{DeviceHistory, Series, SeriesMetric};
pub use ops::*;
pub use optimize::{Precision, Recommendation};
pub use peaks::PublishedPeaks;
pub use power::{PowerLimits, PowerTarget};
pub use status::{
    CpuStatus, DeviceStatus, GpuProcess, MetricSource, PcieLink, PoolUsage, Reading, ThrottleReason, Unavailable,
};
