//! A device benchmark through burn: square matmul throughput (f32, and f16 where the device
//! computes it) and memory bandwidth from a large elementwise pass.
//!
//! Sizes follow the device: 8192³ matmuls and a 1 GiB stream on big GPUs, down to 256³ and
//! 16 MiB on software adapters, so a CPU-only machine finishes in a second or two. Each
//! measurement runs one untimed pass first (kernel compilation and autotuning), then repeats
//! until about half a second has passed, with a device sync before the clock stops.

use std::time::{Duration, Instant};

use burn::tensor::{Distribution, FloatDType, Tensor};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::ComputeError;
use super::guarded;
use crate::devices::{DeviceId, DeviceKind};

/// How big to make the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchmarkPlan {
    pub matmul_size: usize,
    pub stream_bytes: usize,
    pub try_f16: bool,
    pub min_time: Duration,
    pub max_iterations: u32,
}

impl BenchmarkPlan {
    pub fn for_device(kind: DeviceKind, memory_bytes: Option<u64>, shader_f16: bool) -> Self {
        let memory = memory_bytes.unwrap_or(0);
        let (matmul_size, stream_bytes) = match kind {
            DeviceKind::DiscreteGpu | DeviceKind::VirtualGpu if memory >= 8 << 30 => (8192, 1 << 30),
            DeviceKind::DiscreteGpu | DeviceKind::IntegratedGpu | DeviceKind::VirtualGpu | DeviceKind::Other => {
                (4096, 256 << 20)
            }
            DeviceKind::Cpu => (512, 64 << 20),
            DeviceKind::SoftwareGpu => (256, 16 << 20),
        };
        Self {
            matmul_size,
            stream_bytes,
            try_f16: shader_f16 || kind == DeviceKind::Cpu,
            min_time: Duration::from_millis(500),
            max_iterations: 200,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct MatmulResult {
    /// `f32` or `f16`.
    pub dtype: String,
    /// n of the n×n×n product.
    pub size: u32,
    pub iterations: u32,
    pub seconds: f64,
    pub tflops: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct BandwidthResult {
    /// Bytes read plus bytes written per pass.
    pub bytes_per_pass: u64,
    pub iterations: u32,
    pub seconds: f64,
    pub gb_per_s: f64,
}

/// A device's measured throughput.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct BenchmarkResult {
    pub device_id: DeviceId,
    /// `vulkan`, `dx12`, `metal` or `cpu`.
    pub backend: String,
    /// Unix milliseconds when it finished.
    pub finished_at_ms: u64,
    pub matmul: Vec<MatmulResult>,
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<BandwidthResult>,
    /// Measurements not taken, and why.
    pub skipped: Vec<String>,
    pub wall_seconds: f64,
}

/// Runs the plan on `device`. Blocking: call it from a worker thread.
pub fn run(
    device: &burn::tensor::Device,
    plan: BenchmarkPlan,
) -> Result<(Vec<MatmulResult>, BandwidthResult, Vec<String>), ComputeError> {
    // Between measurements, never inside a timed one, the device's owner serves the UI's short
    // requests (`between_steps` does nothing off an owner thread).
    let mut matmul = vec![guarded(|| matmul_throughput(device, plan, None))??];
    super::between_steps();
    let mut skipped = Vec::new();
    if plan.try_f16 {
        if device.supports_dtype(FloatDType::F16) {
            matmul.push(guarded(|| matmul_throughput(device, plan, Some(FloatDType::F16)))??);
            super::between_steps();
        } else {
            skipped.push("f16 matmul: burn does not compute f16 on this device".to_owned());
        }
    } else {
        skipped.push("f16 matmul: the adapter has no shader-f16 feature".to_owned());
    }
    let bandwidth = guarded(|| stream_bandwidth(device, plan))??;
    Ok((matmul, bandwidth, skipped))
}

fn sync(device: &burn::tensor::Device) -> Result<(), ComputeError> {
    device.sync().map_err(|e| ComputeError::Failed(format!("{e:?}")))
}

/// Repeats `pass` until `min_time` has passed (at least twice), after one untimed pass.
///
/// Each pass's output stays alive until the next pass has been handed to the device, and the
/// device's queue is flushed after every pass: burn's fusion would otherwise be free to skip
/// work whose result nobody keeps, or to merge consecutive passes into one kernel.
fn time_passes<const D: usize>(
    device: &burn::tensor::Device,
    plan: BenchmarkPlan,
    mut pass: impl FnMut() -> Tensor<D>,
) -> Result<(u32, f64), ComputeError> {
    let flush = |device: &burn::tensor::Device| device.flush().map_err(|e| ComputeError::Failed(format!("{e:?}")));
    let warmup = pass();
    sync(device)?;
    let mut kept = Some(warmup);
    let start = Instant::now();
    let mut iterations = 0;
    while iterations < 2 || (start.elapsed() < plan.min_time && iterations < plan.max_iterations) {
        let output = pass();
        flush(device)?;
        kept.replace(output);
        iterations += 1;
        // Sync in batches so the queue stays full but the clock still sees every pass.
        if iterations % 4 == 0 {
            sync(device)?;
        }
    }
    sync(device)?;
    let seconds = start.elapsed().as_secs_f64();
    drop(kept);
    Ok((iterations, seconds))
}

fn matmul_throughput(
    device: &burn::tensor::Device,
    plan: BenchmarkPlan,
    dtype: Option<FloatDType>,
) -> Result<MatmulResult, ComputeError> {
    let n = plan.matmul_size;
    let mut a = Tensor::<2>::random([n, n], Distribution::Default, device);
    let mut b = Tensor::<2>::random([n, n], Distribution::Default, device);
    if let Some(dtype) = dtype {
        a = a.cast(dtype);
        b = b.cast(dtype);
    }
    let (iterations, seconds) = time_passes(device, plan, || a.clone().matmul(b.clone()))?;
    let flop = 2.0 * (n as f64).powi(3) * iterations as f64;
    Ok(MatmulResult {
        dtype: if dtype.is_some() { "f16" } else { "f32" }.to_owned(),
        size: n as u32,
        iterations,
        seconds,
        tflops: flop / seconds / 1e12,
    })
}

fn stream_bandwidth(device: &burn::tensor::Device, plan: BenchmarkPlan) -> Result<BandwidthResult, ComputeError> {
    let elements = plan.stream_bytes / 4;
    let x = Tensor::<1>::random([elements], Distribution::Default, device);
    let (iterations, seconds) = time_passes(device, plan, || x.clone().mul_scalar(1.0001))?;
    let bytes_per_pass = 2 * (elements as u64) * 4;
    Ok(BandwidthResult {
        bytes_per_pass,
        iterations,
        seconds,
        gb_per_s: bytes_per_pass as f64 * iterations as f64 / seconds / 1e9,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_scale_with_the_device() {
        let big = BenchmarkPlan::for_device(DeviceKind::DiscreteGpu, Some(80 << 30), true);
        assert_eq!((big.matmul_size, big.stream_bytes, big.try_f16), (8192, 1 << 30, true));
        let soft = BenchmarkPlan::for_device(DeviceKind::SoftwareGpu, None, false);
        assert_eq!((soft.matmul_size, soft.try_f16), (256, false));
    }

    #[test]
    fn the_cpu_backend_measures_for_real() {
        let device = burn::tensor::Device::flex();
        let plan = BenchmarkPlan {
            matmul_size: 64,
            stream_bytes: 1 << 20,
            try_f16: false,
            min_time: Duration::from_millis(20),
            max_iterations: 20,
        };
        let (matmul, bandwidth, skipped) = run(&device, plan).unwrap();
        assert_eq!(matmul.len(), 1);
        assert!(matmul[0].tflops > 0.0 && matmul[0].iterations >= 2);
        assert!(bandwidth.gb_per_s > 0.0);
        assert_eq!(skipped.len(), 1);
    }
}
