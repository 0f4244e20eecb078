// Generated from Kiln's Rust types by `cargo run -p kiln-engine --bin kiln-typegen`.
// Do not edit: change the Rust types and run the generator again.

/**
 * One wgpu adapter: the device as one graphics API sees it.
 */
export type Adapter = { backend: GraphicsBackend, name: string, kind: DeviceKind, vendor_id: number, device_id: number, 
/**
 * `0000:01:00.0` where the API reports it (Vulkan's PCI bus info extension).
 */
pci_bus_id?: string, driver: string, driver_info: string, 
/**
 * Whether Kiln can run burn's kernels through this adapter.
 */
computes: boolean, 
/**
 * Why not, when it cannot.
 */
compute_note?: string, features: AdapterFeatures, limits: AdapterLimits, };

/**
 * The wgpu features that matter for Kiln's kernels, and the full list for the details panel.
 */
export type AdapterFeatures = { 
/**
 * `f16` in shaders: half-precision storage and arithmetic.
 */
shader_f16: boolean, 
/**
 * Subgroup (warp/wave) operations.
 */
subgroups: boolean, 
/**
 * 64-bit integers in shaders.
 */
shader_int64: boolean, 
/**
 * GPU timestamps for profiling.
 */
timestamp_query: boolean, 
/**
 * Cooperative matrices (tensor cores) through wgpu's experimental feature.
 */
cooperative_matrix: boolean, 
/**
 * Vulkan only: `VK_KHR_workgroup_memory_explicit_layout`. burn 0.22's SPIR-V compiler
 * (cubecl 0.11) emits invalid shared-memory code without it, which crashes drivers such
 * as Mesa's lavapipe, so Kiln computes through another API of the device then.
 */
workgroup_memory_explicit_layout: boolean, 
/**
 * Every feature the adapter reports, by wgpu's name.
 */
all: Array<string>, };

/**
 * The adapter limits that bound what Kiln can run in one dispatch.
 */
export type AdapterLimits = { max_buffer_size: number, max_storage_buffer_binding_size: number, max_compute_workgroup_storage_size: number, max_compute_invocations_per_workgroup: number, max_compute_workgroup_size: [number, number, number], max_compute_workgroups_per_dimension: number, max_storage_buffers_per_shader_stage: number, subgroup_min_size: number, subgroup_max_size: number, };

/**
 * An operation's failure as both doors carry it.
 */
export type ApiError = { 
/**
 * Stable machine-readable reason.
 */
code: ErrorCode, 
/**
 * A sentence for people: what failed and, where known, what to do.
 */
message: string, 
/**
 * Structured context (the device id, the path, the driver's own error text).
 */
details?: JsonValue, };

/**
 * What this Kiln is.
 */
export type AppInfo = { version: string, 
/**
 * Compute backends compiled in (`vulkan`, `metal`, `dx12`, `cpu`).
 */
backends: Array<string>, 
/**
 * Backends not compiled in, and why.
 */
backends_missing: Array<string>, data_dir: string, pid: number, };

export type BandwidthResult = { 
/**
 * Bytes read plus bytes written per pass.
 */
bytes_per_pass: number, iterations: number, seconds: number, gb_per_s: number, };

/**
 * A device's measured throughput.
 */
export type BenchmarkResult = { device_id: DeviceId, 
/**
 * `vulkan`, `dx12`, `metal` or `cpu`.
 */
backend: string, 
/**
 * Unix milliseconds when it finished.
 */
finished_at_ms: number, matmul: Array<MatmulResult>, bandwidth?: BandwidthResult, 
/**
 * Measurements not taken, and why.
 */
skipped: Array<string>, wall_seconds: number, };

export type Capabilities = { device_id: DeviceId, compute_backend?: string, precisions: Array<PrecisionSupport>, features?: AdapterFeatures, limits?: AdapterLimits, memory_total_bytes?: number, };

/**
 * Processor figures for the CPU device.
 */
export type CpuStatus = { logical_cores: number, physical_cores?: number, 
/**
 * Per logical core, percent.
 */
core_percent: Array<number>, frequency_mhz: number, 
/**
 * 1, 5 and 15 minute load averages (not on Windows).
 */
load_average?: [number, number, number], swap_used_bytes: number, swap_total_bytes: number, };

/**
 * A device as Kiln lists it.
 */
export type Device = { id: DeviceId, name: string, kind: DeviceKind, vendor: Vendor, pci_device_id?: number, pci_bus_id?: string, 
/**
 * The driver's unique id (NVML's `GPU-…` UUID).
 */
uuid?: string, 
/**
 * Dedicated memory: VRAM for a card, system RAM for the CPU. Absent where no source says.
 */
memory_total_bytes?: number, 
/**
 * The API Kiln computes with on this device, if any: `vulkan`, `dx12`, `metal`, or `cpu`
 * (burn's pure-Rust Flex backend).
 */
compute_backend?: string, adapters: Array<Adapter>, 
/**
 * Which telemetry sources feed this device, and why the others do not.
 */
sources: Array<SourceState>, };

/**
 * Everything the details panel shows.
 */
export type DeviceDetails = { device: Device, status?: DeviceStatus, health?: DeviceHealth, drivers: Array<DriverInfo>, capabilities: Capabilities, 
/**
 * Power limits, or why they cannot be read.
 */
power?: PowerInfo, power_unavailable?: string, last_benchmark?: BenchmarkResult, published_peaks?: PublishedPeaks, };

export type DeviceHealth = { device_id: DeviceId, level: HealthLevel, reasons: Array<HealthReason>, };

/**
 * A device's history in columns, ready for a chart: one timestamp per row and one value list per
 * metric (`null` where the metric was not read). Metrics never read are left out.
 */
export type DeviceHistory = { device_id: DeviceId, 
/**
 * Unix milliseconds of each row.
 */
t_ms: Array<number>, series: Array<Series>, };

/**
 * A device's stable name, the same across restarts: `pci:0000:01:00.0` for a card on a bus,
 * `cpu` for the processor, `adapter:<backend>:<slug>` for an adapter with no bus address
 * (software rasterisers such as lavapipe).
 */
export type DeviceId = string;

/**
 * What sort of device this is.
 */
export type DeviceKind = "discrete_gpu" | "integrated_gpu" | "virtual_gpu" | "software_gpu" | "cpu" | "other";

export type DeviceList = { devices: Array<Device>, };

/**
 * Names one device.
 */
export type DeviceRef = { device_id: DeviceId, };

/**
 * One device with its latest reading and health.
 */
export type DeviceSnapshot = { device: Device, status?: DeviceStatus, health?: DeviceHealth, };

/**
 * Everything read about one device at one moment.
 */
export type DeviceStatus = { device_id: DeviceId, 
/**
 * Unix time of the sample, milliseconds.
 */
sampled_at_ms: number, 
/**
 * Busiest engine, percent (CPU load for the CPU).
 */
utilization_percent?: Reading<number>, 
/**
 * Memory controller busy, percent.
 */
memory_busy_percent?: Reading<number>, 
/**
 * VRAM in use by every process (system RAM for the CPU).
 */
memory_used_bytes?: Reading<number>, memory_total_bytes?: Reading<number>, 
/**
 * The main die temperature (edge on AMD, GPU on NVIDIA, package on CPUs).
 */
temperature_c?: Reading<number>, 
/**
 * Hottest spot of the die (AMD junction).
 */
temperature_hotspot_c?: Reading<number>, temperature_memory_c?: Reading<number>, power_watts?: Reading<number>, 
/**
 * The limit the board enforces now.
 */
power_limit_watts?: Reading<number>, clock_graphics_mhz?: Reading<number>, clock_memory_mhz?: Reading<number>, clock_graphics_max_mhz?: Reading<number>, clock_memory_max_mhz?: Reading<number>, fan_percent?: Reading<number>, fan_rpm?: Reading<number>, pcie_link?: Reading<PcieLink>, pcie_tx_bytes_per_s?: Reading<number>, pcie_rx_bytes_per_s?: Reading<number>, throttle_reasons?: Reading<Array<ThrottleReason>>, 
/**
 * Uncorrected ECC errors since the driver loaded.
 */
ecc_uncorrected_errors?: Reading<number>, processes?: Reading<Array<GpuProcess>>, 
/**
 * Kiln's own compute pools on this device, where Kiln has opened it.
 */
kiln_pools?: Reading<PoolUsage>, cpu?: CpuStatus, 
/**
 * Sources that gave nothing for this device this time, and why.
 */
unavailable: Array<Unavailable>, };

/**
 * A driver or runtime component that serves a device.
 */
export type DriverInfo = { 
/**
 * What it is: `Vulkan driver`, `NVIDIA driver`, `CUDA driver API`, `kernel module`...
 */
component: string, name: string, version: string, };

/**
 * Why an operation failed, in a form that never changes meaning.
 */
export type ErrorCode = "invalid_input" | "unknown_operation" | "not_found" | "unsupported" | "permission_denied" | "driver_error" | "compute_failed" | "out_of_memory" | "busy" | "io" | "invalid_model" | "internal" | "unauthorized" | "forbidden_host" | "forbidden_origin" | "method_not_allowed";

/**
 * A process holding memory or time on a device.
 */
export type GpuProcess = { pid: number, name: string, memory_bytes?: number, 
/**
 * Share of the busiest engine this process used since the last sample.
 */
engine_percent?: number, 
/**
 * `compute`, `graphics`, or `compute+graphics` where the driver says.
 */
kind: string, 
/**
 * Whether this is Kiln itself.
 */
is_kiln: boolean, };

/**
 * A graphics API through which wgpu reaches an adapter.
 */
export type GraphicsBackend = "vulkan" | "metal" | "dx12" | "gl" | "browser_web_gpu" | "noop";

export type HealthLevel = "ok" | "warning" | "critical";

/**
 * One reason for a level above ok.
 */
export type HealthReason = { level: HealthLevel, 
/**
 * Stable key: `temperature`, `hotspot_temperature`, `memory_pressure`, `throttling`,
 * `ecc_errors`.
 */
code: string, message: string, };

/**
 * Where warnings and critical alerts start.
 */
export type HealthThresholds = { gpu_temperature_warning_c: number, gpu_temperature_critical_c: number, hotspot_temperature_warning_c: number, hotspot_temperature_critical_c: number, cpu_temperature_warning_c: number, cpu_temperature_critical_c: number, memory_warning_percent: number, memory_critical_percent: number, };

export type HistoryRequest = { device_id: DeviceId, 
/**
 * Only rows newer than this Unix millisecond time.
 */
since_ms?: number, };

export type HostInfo = { hostname: string, os: string, kernel: string, };

export type JsonValue = number | string | boolean | Array<JsonValue> | { [key in string]: JsonValue } | null;

export type KilnEvent = { "type": "telemetry", sampled_at_ms: number, statuses: Array<DeviceStatus>, health: Array<DeviceHealth>, } | { "type": "devices_changed", devices: Array<Device>, } | { "type": "settings_changed", settings: Settings, } | { "type": "benchmark_started", device_id: DeviceId, } | { "type": "benchmark_finished", result: BenchmarkResult, } | { "type": "benchmark_failed", device_id: DeviceId, error: ApiError, };

export type MatmulResult = { 
/**
 * `f32` or `f16`.
 */
dtype: string, 
/**
 * n of the n×n×n product.
 */
size: number, iterations: number, seconds: number, tflops: number, };

/**
 * Where a reading comes from.
 */
export type MetricSource = "nvml" | "sysfs" | "hwmon" | "fdinfo" | "dxgi" | "pdh" | "sysinfo" | "wgpu" | "cubecl";

/**
 * An operation that takes no input.
 */
export type NoInput = Record<symbol, never>;

/**
 * Whether an operation may change state.
 */
export type OperationKind = "query" | "mutation";

/**
 * The PCIe link a card is trained at, and the best it could do.
 */
export type PcieLink = { generation?: number, width?: number, max_generation?: number, max_width?: number, };

/**
 * What Kiln's own compute pools hold on the device (cubecl's allocator).
 */
export type PoolUsage = { allocations: number, bytes_in_use: number, bytes_padding: number, bytes_reserved: number, };

/**
 * Power limits and whether Kiln may change them here.
 */
export type PowerInfo = { device_id: DeviceId, limits: PowerLimits, can_set: boolean, can_set_reason: string, };

/**
 * A device's power limits, watts.
 */
export type PowerLimits = { target: PowerTarget, 
/**
 * The limit set now.
 */
current_watts: number, 
/**
 * The limit the board enforces (the lowest of every limit in force).
 */
enforced_watts?: number, default_watts?: number, min_watts?: number, max_watts?: number, };

/**
 * What controls the limit.
 */
export type PowerTarget = "nvml" | "hwmon";

export type Precision = "f16" | "f32";

/**
 * A precision and whether Kiln can compute in it here.
 */
export type PrecisionSupport = { dtype: string, supported: boolean, note: string, };

export type PublishedPeaks = { 
/**
 * The card the figures are for.
 */
card: string, fp32_tflops: number, fp16_tflops: number, memory_gb_per_s: number, 
/**
 * Where the figures come from.
 */
source: string, };

/**
 * One value and its source.
 */
export type Reading<T> = { value: T, source: MetricSource, };

export type Recommendation = { device_id: DeviceId, precision: Precision, precision_reason: string, 
/**
 * Memory Kiln should keep itself within on this device.
 */
memory_budget_bytes: number, budget_reason: string, 
/**
 * Input tile edge for upscaling, pixels.
 */
tile_size: number, tile_reason: string, };

/**
 * What releasing Kiln's pools did.
 */
export type ResetResult = { device_id: DeviceId, 
/**
 * Whether Kiln had compute pools open there at all.
 */
had_pools: boolean, released_bytes: number, before?: PoolUsage, after?: PoolUsage, };

export type Series = { metric: SeriesMetric, unit: string, values: Array<number | null>, };

/**
 * A metric the charts plot over time.
 */
export type SeriesMetric = "utilization" | "memory_used" | "temperature" | "power" | "clock_graphics" | "clock_memory" | "fan" | "pcie_tx" | "pcie_rx";

export type SetPowerLimit = { device_id: DeviceId, watts: number, };

/**
 * Every setting.
 */
export type Settings = { telemetry: TelemetrySettings, health: HealthThresholds, };

/**
 * Every device at one moment, like `nvtop -s`.
 */
export type Snapshot = { taken_at_ms: number, kiln_version: string, host: HostInfo, devices: Array<DeviceSnapshot>, };

/**
 * Whether a telemetry source feeds a device.
 */
export type SourceState = { source: MetricSource, available: boolean, 
/**
 * Why not, or what it reads ("NVML 12.580, driver 580.159.04").
 */
detail: string, };

/**
 * How often devices are sampled and how much history is kept.
 */
export type TelemetrySettings = { 
/**
 * Milliseconds between samples (100 to 60000).
 */
interval_ms: number, 
/**
 * Minutes of history kept per device (10 to 1440).
 */
history_minutes: number, };

/**
 * Why the card is running below its clocks.
 */
export type ThrottleReason = "idle" | "application_clocks" | "power_cap" | "hardware_slowdown" | "thermal_slowdown" | "power_brake" | "sync_boost" | "display_clocks";

/**
 * A source that does not feed this device, and why.
 */
export type Unavailable = { source: MetricSource, reason: string, };

/**
 * The company behind a device, from its PCI vendor id.
 */
export type Vendor = { 
/**
 * PCI vendor id (0x10de NVIDIA, 0x1002 AMD, 0x8086 Intel, 0x106b Apple, 0x10005 Mesa).
 */
pci_id?: number, name: string, };

/** Every operation: its kind, input and output. */
export type Operations = {
  /**  Kiln's version, build and data folder. */
  "app.info": { kind: "query"; input: NoInput; output: AppInfo };
  /**  The settings in force. */
  "settings.get": { kind: "query"; input: NoInput; output: Settings };
  /**  Validates, saves and applies new settings. */
  "settings.update": { kind: "mutation"; input: Settings; output: Settings };
  /**  Every device Kiln sees. */
  "devices.list": { kind: "query"; input: NoInput; output: DeviceList };
  /**  Every device with its latest reading and health (`kiln devices --json`). */
  "devices.snapshot": { kind: "query"; input: NoInput; output: Snapshot };
  /**  A device with drivers, capabilities, power limits and its last benchmark. */
  "devices.details": { kind: "query"; input: DeviceRef; output: DeviceDetails };
  /**  The drivers and runtimes serving a device. */
  "devices.drivers": { kind: "query"; input: DeviceRef; output: Array<DriverInfo> };
  /**  Precisions, features and limits of a device's compute adapter. */
  "devices.capabilities": { kind: "query"; input: DeviceRef; output: Capabilities };
  /**  A device's latest reading. */
  "devices.status": { kind: "query"; input: DeviceRef; output: DeviceStatus };
  /**  A device's health with its reasons. */
  "devices.health": { kind: "query"; input: DeviceRef; output: DeviceHealth };
  /**  A device's recent readings, in columns. */
  "devices.history": { kind: "query"; input: HistoryRequest; output: DeviceHistory };
  /**  Recommended precision, memory budget and tile size for a device. */
  "devices.optimize": { kind: "query"; input: DeviceRef; output: Recommendation };
  /**  A device's power limits and whether Kiln may change them. */
  "devices.power": { kind: "query"; input: DeviceRef; output: PowerInfo };
  /**  Sets a device's power limit where the driver permits. */
  "devices.set_power_limit": { kind: "mutation"; input: SetPowerLimit; output: PowerInfo };
  /**  Measures matmul throughput and memory bandwidth through burn. */
  "devices.benchmark": { kind: "mutation"; input: DeviceRef; output: BenchmarkResult };
  /**  Releases the memory Kiln's compute pools hold on a device. */
  "devices.reset": { kind: "mutation"; input: DeviceRef; output: ResetResult };
  /**  Finds devices again. */
  "devices.rescan": { kind: "mutation"; input: NoInput; output: DeviceList };
};

/** The kind of each operation, for the HTTP client to pick GET or POST. */
export const OPERATION_KINDS: { [K in keyof Operations]: Operations[K]["kind"] } = {
  "app.info": "query",
  "settings.get": "query",
  "settings.update": "mutation",
  "devices.list": "query",
  "devices.snapshot": "query",
  "devices.details": "query",
  "devices.drivers": "query",
  "devices.capabilities": "query",
  "devices.status": "query",
  "devices.health": "query",
  "devices.history": "query",
  "devices.optimize": "query",
  "devices.power": "query",
  "devices.set_power_limit": "mutation",
  "devices.benchmark": "mutation",
  "devices.reset": "mutation",
  "devices.rescan": "mutation",
};
