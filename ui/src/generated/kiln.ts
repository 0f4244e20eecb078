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
 * One allocation Kiln made on a device.
 */
export type Allocation = { id: number, device_id: DeviceId, 
/**
 * Who holds it: a model's name, or a job.
 */
owner: string, 
/**
 * The part of the owner: `network`, `unet`, `vae`...
 */
component: string, kind: AllocationKind, bytes: number, 
/**
 * Unix time, milliseconds.
 */
since_ms: number, 
/**
 * The model file, for model weights.
 */
path?: string, };

/**
 * What an allocation holds.
 */
export type AllocationKind = "weights" | "activations" | "workspace";

/**
 * What the alpha channel goes through.
 */
export type AlphaMode = "model" | "resize";

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

/**
 * A detected architecture and the hyper-parameters read from the shapes.
 */
export type Architecture = { "kind": "esrgan", layout: EsrganLayout, scale: number, blocks: number, features: number, growth: number, in_channels: number, out_channels: number, 
/**
 * Input pixel-unshuffle factor (1 = none; 2 for x2 models, 4 for x1).
 */
pixel_unshuffle: number, } | { "kind": "compact", scale: number, num_conv: number, features: number, in_channels: number, out_channels: number, } | { "kind": "stable_diffusion", family: SdFamily, variant: UnetVariant, has_vae: boolean, has_text_encoder: boolean, } | { "kind": "vae", latent_channels: number, } | { "kind": "lora", style: LoraStyle, family: SdFamily | null, rank: number, modules: number, } | { "kind": "control_net", family: SdFamily | null, } | { "kind": "text_encoder", width: number, } | { "kind": "unsupported", reason: string, };

export type BandwidthResult = { 
/**
 * Bytes read plus bytes written per pass.
 */
bytes_per_pass: number, iterations: number, seconds: number, gb_per_s: number, };

/**
 * Jobs submitted together: one drop, one folder, one CLI call.
 */
export type Batch = { id: number, name: string, session_id?: number, created_ms: number, 
/**
 * Jobs by state, and the mean progress.
 */
jobs: number, done: number, failed: number, cancelled: number, progress: number, };

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

/**
 * A model held in the RAM cache.
 */
export type CachedModel = { path: string, name: string, bytes: number, pinned: boolean, last_used_ms: number, };

export type Capabilities = { device_id: DeviceId, compute_backend?: string, precisions: Array<PrecisionSupport>, features?: AdapterFeatures, limits?: AdapterLimits, memory_total_bytes?: number, };

/**
 * The jobs an operation changed.
 */
export type Changed = { ids: Array<number>, };

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
 * Element types found in model files.
 */
export type DType = "f64" | "f32" | "f16" | "bf16" | "i64" | "i32" | "i16" | "i8" | "u8" | "bool";

/**
 * How many tensors of one dtype a model has.
 */
export type DTypeCount = { dtype: DType, tensors: number, };

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
 * One device's memory, as the VRAM map draws it.
 */
export type DeviceMemory = { device_id: DeviceId, name: string, 
/**
 * The device's memory, where it says (the driver for GPUs; system RAM for the CPU).
 */
total_bytes?: number, 
/**
 * Used by everyone, as the device reports it.
 */
used_bytes?: number, 
/**
 * Used by other processes: the device's figure less what Kiln's pools reserve.
 */
other_bytes?: number, 
/**
 * Model weights Kiln keeps here (the ledger).
 */
kiln_weights_bytes: number, 
/**
 * Kiln's working memory: what the pools hold in use beyond the weights.
 */
kiln_working_bytes: number, 
/**
 * cubecl's pool figures, once Kiln has run work here.
 */
pool?: PoolUsage, 
/**
 * Whether `pool` (and the working memory from it) is the last reading that came back: the
 * device was still busy with earlier work (a job's tile, a first launch's compilation).
 */
pool_pending: boolean, 
/**
 * How much Kiln may keep resident here.
 */
budget_bytes: number, 
/**
 * How the budget was set: `setting` or the default fraction it came from.
 */
budget_source: string, models: Array<ResidentModel>, };

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
export type ErrorCode = "invalid_input" | "unknown_operation" | "not_found" | "unsupported" | "permission_denied" | "driver_error" | "compute_failed" | "out_of_memory" | "device_stalled" | "busy" | "cancelled" | "io" | "invalid_model" | "internal" | "unauthorized" | "forbidden_host" | "forbidden_origin" | "method_not_allowed";

/**
 * The key layout of an ESRGAN-family checkpoint.
 */
export type EsrganLayout = "old" | "new" | "bsrgan";

/**
 * Where a model folder comes from.
 */
export type FolderKind = "default" | "bundled" | "user";

/**
 * A folder to add to or remove from the library.
 */
export type FolderRef = { path: string, };

/**
 * How a folder's last scan went.
 */
export type FolderScan = { "state": "complete" } | { "state": "cut_short", message: string, } | { "state": "refused", message: string, };

export type GalleryQuery = { limit?: number, };

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
 * `ecc_errors`, `device_stalled` (the device's watchdog saw Kiln's work there stop).
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

/**
 * An image for the UI, as bytes a browser displays.
 */
export type ImageData = { mime: string, data_base64: string, width: number, height: number, };

/**
 * Which image of a job.
 */
export type ImageKind = "input" | "output";

export type ImageRequest = { id: number, which: ImageKind, 
/**
 * A thumbnail no larger than this (made once, then cached); absent: the file itself.
 */
max_side?: number, };

/**
 * An input: a file or folder on this machine, or image bytes sent by a browser.
 */
export type InputItem = { "from": "path", path: string, } | { "from": "upload", name: string, data_base64: string, };

/**
 * A job as lists and events show it.
 */
export type Job = { id: number, 
/**
 * The first step's kind (`upscale`), or `workflow` for several steps.
 */
kind: string, 
/**
 * The input's file name.
 */
name: string, state: JobState, 
/**
 * Higher runs first; equal priorities run in queue order.
 */
priority: number, position: number, batch_id?: number, session_id?: number, 
/**
 * The device the user asked for; absent: any device Kiln picks.
 */
device_request?: DeviceId, 
/**
 * The device running it, or that ran it.
 */
device_id?: DeviceId, spec: JobSpec, 
/**
 * The step running, or next to run (0-based).
 */
step: number, 
/**
 * What the finished steps produced, in order.
 */
outcomes: Array<StepOutcome>, 
/**
 * 0 to 1 over the whole job.
 */
progress: number, error?: ApiError, attempts: number, created_ms: number, started_ms?: number, finished_ms?: number, };

/**
 * A job with its log.
 */
export type JobDetails = { job: Job, log: Array<LogLine>, };

export type JobIds = { ids: Array<number>, };

/**
 * The queue: jobs, batches, sessions, whether it is paused, and the workers.
 */
export type JobList = { jobs: Array<Job>, batches: Array<Batch>, sessions: Array<Session>, paused: boolean, workers: Array<WorkerStatus>, };

/**
 * Live progress of a running job (not stored; the stored figure is updated per tile).
 */
export type JobProgress = { job_id: number, device_id: DeviceId, 
/**
 * 0 to 1 over the whole job.
 */
progress: number, step: number, steps: number, step_kind: string, tiles_done: number, tiles_total: number, 
/**
 * Seconds left, once there is a rate to go by.
 */
eta_s?: number, elapsed_s: number, };

/**
 * Which jobs to list; empty `states` lists all.
 */
export type JobQuery = { states: Array<JobState>, batch_id?: number, session_id?: number, 
/**
 * At most this many (default 500).
 */
limit?: number, };

export type JobRef = { id: number, };

/**
 * What a job does: its input and its steps.
 */
export type JobSpec = { 
/**
 * The input file (canonical path).
 */
input: string, steps: Array<Step>, 
/**
 * Where the last step writes its result.
 */
output_dir: string, };

/**
 * Where a job stands.
 */
export type JobState = "queued" | "running" | "paused" | "done" | "failed" | "cancelled";

export type JsonValue = number | string | boolean | Array<JsonValue> | { [key in string]: JsonValue } | null;

export type KilnEvent = { "type": "telemetry", sampled_at_ms: number, statuses: Array<DeviceStatus>, health: Array<DeviceHealth>, } | { "type": "devices_changed", devices: Array<Device>, } | { "type": "settings_changed", settings: Settings, } | { "type": "benchmark_started", device_id: DeviceId, } | { "type": "benchmark_finished", result: BenchmarkResult, } | { "type": "benchmark_failed", device_id: DeviceId, error: ApiError, } | { "type": "models_changed" } | { "type": "job_changed", job: Job, } | { "type": "job_progress", progress: JobProgress, } | { "type": "queue_changed" };

export type Library = { folders: Array<ModelFolder>, models: Array<LibraryModel>, 
/**
 * Files still waiting for their hash.
 */
hashing: number, };

/**
 * One model of the library, with where it is loaded.
 */
export type LibraryModel = { path: string, name: string, folder: string, 
/**
 * What the file is; absent when it could not be read (see `error`).
 */
info?: ModelInfo, error?: string, 
/**
 * Whether Kiln can run it now (the upscalers; other architectures are listed, not run).
 */
runnable: boolean, 
/**
 * AutoV2 (first 10 hex digits of SHA-256), once hashed.
 */
autov2?: string, sha256?: string, in_ram: boolean, on_devices: Array<DeviceId>, last_used_ms?: number, };

/**
 * Load a model of the library onto a device.
 */
export type LoadModel = { path: string, device_id: DeviceId, };

/**
 * What a load did.
 */
export type LoadResult = { path: string, device_id: DeviceId, bytes: number, source: LoadSource, seconds: number, 
/**
 * Models evicted from the device to make room.
 */
evicted: Array<string>, };

/**
 * Where a load found the model.
 */
export type LoadSource = "resident" | "ram_cache" | "disk";

/**
 * A line of a job's log.
 */
export type LogLine = { at_ms: number, 
/**
 * `info`, `warn` or `error`.
 */
level: string, message: string, };

export type LoraStyle = "kohya" | "diffusers";

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
 * Memory settings people change.
 */
export type MemorySettings = { 
/**
 * The RAM cache's budget as a share of system RAM (0.05 to 0.9).
 */
ram_cache_fraction: number, 
/**
 * Each device's default budget as a share of the memory not used by other processes
 * (0.1 to 0.98).
 */
vram_budget_fraction: number, 
/**
 * Budgets set per device, in bytes.
 */
vram_budget_bytes: { [key in string]: number }, };

/**
 * Everything the Memory page shows.
 */
export type MemoryStatus = { devices: Array<DeviceMemory>, ram: RamCacheStatus, };

/**
 * Where a reading comes from.
 */
export type MetricSource = "nvml" | "sysfs" | "hwmon" | "fdinfo" | "dxgi" | "pdh" | "sysinfo" | "wgpu" | "cubecl";

export type ModelFolder = { path: string, kind: FolderKind, exists: boolean, models: number, 
/**
 * How its last scan went; the Models page shows the message of one that did not finish.
 */
scan: FolderScan, };

/**
 * A model's storage format.
 */
export type ModelFormat = "safetensors" | "pytorch" | "ncnn" | "onnx" | "diffusers";

/**
 * What Kiln knows about a model file from reading its header and tensor table.
 */
export type ModelInfo = { path: string, 
/**
 * File name without extension (the folder name for diffusers).
 */
name: string, format: ModelFormat, architecture: Architecture, 
/**
 * `ESRGAN x4 (23 blocks)`, `SDXL`, `LoRA SD1 rank 8`.
 */
label: string, 
/**
 * The output scale of an upscaler, after any resize the file asks for (the ncnn
 * animevideov3 x2 and x3 models are the x4 network followed by a bicubic downscale).
 */
scale?: number, 
/**
 * Bytes on disk (both files of an ncnn model, every file of a diffusers folder).
 */
file_size: number, parameters: number, tensors: number, dtypes: Array<DTypeCount>, 
/**
 * The file's own metadata (safetensors `__metadata__`).
 */
metadata: { [key in string]: string }, };

/**
 * A model of the library, by path.
 */
export type ModelRef = { path: string, };

/**
 * Where Kiln looks for models beyond its own folder and the bundled ones.
 */
export type ModelSettings = { 
/**
 * Folders the user added, canonical paths.
 */
folders: Array<string>, };

/**
 * How fast one device ran one model, from its finished jobs.
 */
export type ModelSpeed = { 
/**
 * The model file's name.
 */
model: string, 
/**
 * Output megapixels a second over the jobs counted.
 */
megapixels_per_second: number, jobs: number, };

export type NewSession = { name: string, 
/**
 * Start at once; otherwise it collects jobs until started.
 */
start: boolean, };

/**
 * An operation that takes no input.
 */
export type NoInput = Record<symbol, never>;

export type OpenResult = { id: number, 
/**
 * Open the folder holding the result instead of the file.
 */
folder: boolean, };

/**
 * Whether an operation may change state.
 */
export type OperationKind = "query" | "mutation";

/**
 * Output file formats.
 */
export type OutputFormat = "png" | "jpeg" | "webp";

/**
 * How big the result is.
 */
export type OutputSize = { "by": "model" } | { "by": "scale", scale: number, } | { "by": "width", width: number, };

/**
 * The PCIe link a card is trained at, and the best it could do.
 */
export type PcieLink = { generation?: number, width?: number, max_generation?: number, max_width?: number, };

/**
 * Keep a model in the RAM cache whatever its age (or let it go again).
 */
export type PinModel = { path: string, pinned: boolean, };

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
 * The precision a job asks for.
 */
export type PrecisionChoice = "auto" | "f32" | "f16";

/**
 * A precision and whether Kiln can compute in it here.
 */
export type PrecisionSupport = { dtype: string, supported: boolean, note: string, };

/**
 * Folders a path from the UI may lie under.
 */
export type ProcessingSettings = { 
/**
 * Where results go unless a submission names a folder; empty: `Pictures/Kiln`.
 */
output_dir?: string, 
/**
 * Folders beyond the home folder, Kiln's data folder and the output folder that inputs
 * and outputs named by the UI may lie in.
 */
allowed_roots: Array<string>, };

export type PublishedPeaks = { 
/**
 * The card the figures are for.
 */
card: string, fp32_tflops: number, fp16_tflops: number, memory_gb_per_s: number, 
/**
 * Where the figures come from.
 */
source: string, };

export type QueueFlags = { paused: boolean, };

/**
 * The RAM cache.
 */
export type RamCacheStatus = { budget_bytes: number, used_bytes: number, hits: number, misses: number, models: Array<CachedModel>, };

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

/**
 * A model resident on a device.
 */
export type ResidentModel = { path: string, name: string, bytes: number, loaded_at_ms: number, last_used_ms: number, 
/**
 * Held by running work: not evicted.
 */
in_use: boolean, };

export type SdFamily = "sd1" | "sd2" | "sdxl" | "sdxl_refiner";

export type Series = { metric: SeriesMetric, unit: string, values: Array<number | null>, };

/**
 * A metric the charts plot over time.
 */
export type SeriesMetric = "utilization" | "memory_used" | "temperature" | "power" | "clock_graphics" | "clock_memory" | "fan" | "pcie_tx" | "pcie_rx";

/**
 * A named group of jobs started, paused, resumed and cancelled together.
 */
export type Session = { id: number, name: string, state: SessionState, created_ms: number, jobs: number, done: number, progress: number, };

export type SessionAction = "start" | "pause" | "resume" | "cancel";

export type SessionControl = { id: number, action: SessionAction, };

/**
 * Where a session stands.
 */
export type SessionState = "idle" | "active" | "paused" | "cancelled";

/**
 * A device's budget in bytes, or (without `bytes`) back to the default share. A lower budget
 * evicts at once the least recently used models no running work holds.
 */
export type SetBudget = { device_id: DeviceId, bytes?: number, };

export type SetPowerLimit = { device_id: DeviceId, watts: number, };

export type SetPriority = { id: number, priority: number, };

/**
 * Every setting.
 */
export type Settings = { telemetry: TelemetrySettings, health: HealthThresholds, models: ModelSettings, memory: MemorySettings, processing: ProcessingSettings, };

/**
 * An input that did not become a job, and why.
 */
export type Skipped = { input: string, reason: string, };

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
 * One step of a workflow. Each step reads one image file and writes one.
 */
export type Step = { "kind": "upscale" } & UpscaleSettings;

/**
 * What a finished step produced.
 */
export type StepOutcome = { "kind": "upscale" } & UpscaleOutcome;

/**
 * Queue work: each input (every image of a folder) becomes a job running `steps`.
 */
export type SubmitJobs = { inputs: Array<InputItem>, 
/**
 * Include images in sub-folders of folder inputs.
 */
recursive: boolean, steps: Array<Step>, 
/**
 * Where results go; absent: the output folder in settings.
 */
output_dir?: string, 
/**
 * Run on this device; absent: any device Kiln picks.
 */
device_id?: DeviceId, priority: number, session_id?: number, 
/**
 * A name for the batch; several inputs make a batch in any case.
 */
batch_name?: string, };

export type Submitted = { batch_id?: number, jobs: Array<Job>, skipped: Array<Skipped>, };

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
 * Move a model: onto device `to`, or (without `to`) into RAM only.
 */
export type TransferModel = { path: string, to?: DeviceId, };

/**
 * A source that does not feed this device, and why.
 */
export type Unavailable = { source: MetricSource, reason: string, };

/**
 * What the UNet's first convolution takes in.
 */
export type UnetVariant = "normal" | "inpaint" | "depth";

/**
 * Unload a model from one device, or (without `device_id`) from every device and RAM.
 */
export type UnloadModel = { path: string, device_id?: DeviceId, };

/**
 * What was unloaded.
 */
export type Unloaded = { paths: Array<string>, };

/**
 * What an upscale did.
 */
export type UpscaleOutcome = { output: string, input_width: number, input_height: number, output_width: number, output_height: number, model: string, model_autov2?: string, device_id: DeviceId, precision: Precision, 
/**
 * The tile side the work finished with.
 */
tile: number, tta: boolean, seconds: number, };

/**
 * An upscale step's settings.
 */
export type UpscaleSettings = { 
/**
 * The model file (a path in Kiln's model folders); absent: the bundled default.
 */
model?: string, size: OutputSize, format: OutputFormat, 
/**
 * JPEG and WebP quality, 1 to 100.
 */
quality: number, alpha: AlphaMode, 
/**
 * Average the 8 flips and rotations: a little cleaner, 8× the work.
 */
tta: boolean, 
/**
 * The largest tile side in input pixels; absent: chosen from the memory budget.
 */
tile?: number, precision: PrecisionChoice, };

/**
 * The company behind a device, from its PCI vendor id.
 */
export type Vendor = { 
/**
 * PCI vendor id (0x10de NVIDIA, 0x1002 AMD, 0x8086 Intel, 0x106b Apple, 0x10005 Mesa).
 */
pci_id?: number, name: string, };

/**
 * A device's worker, as the queue page shows it.
 */
export type WorkerStatus = { device_id: DeviceId, device_name: string, 
/**
 * Whether it takes jobs no one pinned to a device.
 */
takes_any: boolean, 
/**
 * Why it does or does not (its kind, or what was measured).
 */
routing: string, 
/**
 * How fast its last finished jobs ran, per model.
 */
speeds: Array<ModelSpeed>, job_id?: number, };

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
  /**  Every model in Kiln's model folders, with what it is and where it is loaded. */
  "models.list": { kind: "query"; input: NoInput; output: Library };
  /**  What one model file is: format, architecture, scale, parameters, dtypes, metadata. */
  "models.inspect": { kind: "query"; input: ModelRef; output: ModelInfo };
  /**  Adds a folder to the library. */
  "models.add_folder": { kind: "mutation"; input: FolderRef; output: Library };
  /**  Removes a folder the user added. */
  "models.remove_folder": { kind: "mutation"; input: FolderRef; output: Library };
  /**  Loads a model onto a device within its budget (from the RAM cache when there). */
  "models.load": { kind: "mutation"; input: LoadModel; output: LoadResult };
  /**  Unloads a model from a device, or from everywhere. */
  "models.unload": { kind: "mutation"; input: UnloadModel; output: Unloaded };
  /**  Pins a model in the RAM cache, or lets it go. */
  "models.pin": { kind: "mutation"; input: PinModel; output: MemoryStatus };
  /**  The memory map: every device's memory split by owner, and the RAM cache. */
  "memory.status": { kind: "query"; input: NoInput; output: MemoryStatus };
  /**  One device's memory split by owner. */
  "memory.usage": { kind: "query"; input: DeviceRef; output: DeviceMemory };
  /**  Every allocation Kiln holds (the ledger). */
  "memory.allocations": { kind: "query"; input: NoInput; output: Array<Allocation> };
  /**  Unloads every model no running work holds from a device. */
  "memory.clear": { kind: "mutation"; input: DeviceRef; output: Unloaded };
  /**  Releases the pool memory Kiln reserves but does not use. */
  "memory.cleanup": { kind: "mutation"; input: DeviceRef; output: DeviceMemory };
  /**  Moves a model to another device, or to RAM only. */
  "memory.transfer": { kind: "mutation"; input: TransferModel; output: MemoryStatus };
  /**  Sets a device's budget, or returns it to the default share. */
  "memory.set_budget": { kind: "mutation"; input: SetBudget; output: DeviceMemory };
  /**  The queue: jobs in run order then finished ones, batches, sessions, workers. */
  "jobs.list": { kind: "query"; input: JobQuery; output: JobList };
  /**  A job with its log. */
  "jobs.get": { kind: "query"; input: JobRef; output: JobDetails };
  /**  A job's input or result as image bytes, or a cached thumbnail of it. */
  "jobs.image": { kind: "query"; input: ImageRequest; output: ImageData };
  /**  Queues files, folders or uploaded images, each through the given steps. */
  "jobs.submit": { kind: "mutation"; input: SubmitJobs; output: Submitted };
  /**  Cancels jobs; running ones stop at their next tile. */
  "jobs.cancel": { kind: "mutation"; input: JobIds; output: Changed };
  /**  Holds jobs; running ones stop at their next tile and resume at the same step. */
  "jobs.pause": { kind: "mutation"; input: JobIds; output: Changed };
  /**  Queues held jobs again. */
  "jobs.resume": { kind: "mutation"; input: JobIds; output: Changed };
  /**  Queues failed or cancelled jobs again, at the step they stopped on. */
  "jobs.retry": { kind: "mutation"; input: JobIds; output: Changed };
  /**  Deletes finished jobs from the history; their files stay. */
  "jobs.remove": { kind: "mutation"; input: JobIds; output: Changed };
  /**  Puts a waiting job first. */
  "jobs.move_to_front": { kind: "mutation"; input: JobRef; output: Changed };
  /**  Puts waiting jobs in this order, in the places they held. */
  "jobs.reorder": { kind: "mutation"; input: JobIds; output: Changed };
  /**  Sets a job's priority (higher runs first). */
  "jobs.set_priority": { kind: "mutation"; input: SetPriority; output: Changed };
  /**  Opens a result, or its folder, with the desktop's default application. */
  "jobs.open": { kind: "mutation"; input: OpenResult; output: Changed };
  /**  Starts no new job until resumed (running ones finish). */
  "queue.pause": { kind: "mutation"; input: NoInput; output: QueueFlags };
  /**  Lets the queue start jobs again. */
  "queue.resume": { kind: "mutation"; input: NoInput; output: QueueFlags };
  /**  A named group of jobs, started at once or collecting jobs until started. */
  "sessions.create": { kind: "mutation"; input: NewSession; output: Session };
  /**  Starts, pauses, resumes or cancels a session's jobs together. */
  "sessions.control": { kind: "mutation"; input: SessionControl; output: Session };
  /**  Finished results, newest first, with their settings and timings. */
  "gallery.list": { kind: "query"; input: GalleryQuery; output: Array<Job> };
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
  "models.list": "query",
  "models.inspect": "query",
  "models.add_folder": "mutation",
  "models.remove_folder": "mutation",
  "models.load": "mutation",
  "models.unload": "mutation",
  "models.pin": "mutation",
  "memory.status": "query",
  "memory.usage": "query",
  "memory.allocations": "query",
  "memory.clear": "mutation",
  "memory.cleanup": "mutation",
  "memory.transfer": "mutation",
  "memory.set_budget": "mutation",
  "jobs.list": "query",
  "jobs.get": "query",
  "jobs.image": "query",
  "jobs.submit": "mutation",
  "jobs.cancel": "mutation",
  "jobs.pause": "mutation",
  "jobs.resume": "mutation",
  "jobs.retry": "mutation",
  "jobs.remove": "mutation",
  "jobs.move_to_front": "mutation",
  "jobs.reorder": "mutation",
  "jobs.set_priority": "mutation",
  "jobs.open": "mutation",
  "queue.pause": "mutation",
  "queue.resume": "mutation",
  "sessions.create": "mutation",
  "sessions.control": "mutation",
  "gallery.list": "query",
};
