//! Windows telemetry for any vendor: DXGI for adapter identity and dedicated memory size, and
//! the GPU performance counters (PDH) for engine utilisation, adapter memory in use and
//! per-process memory, as Task Manager shows them.
//!
//! DXGI's `QueryVideoMemoryInfo` answers for the calling process only, so system-wide usage
//! comes from PDH. Temperatures, power and clocks are not in WDDM (vendor SDKs only); on NVIDIA
//! cards NVML supplies them.

use std::collections::HashMap;

use windows::Win32::Foundation::CloseHandle;
use windows::Win32::Graphics::Dxgi::{CreateDXGIFactory1, DXGI_ADAPTER_FLAG_SOFTWARE, IDXGIFactory1};
use windows::Win32::System::Performance::{
    PDH_FMT_COUNTERVALUE_ITEM_W, PDH_FMT_DOUBLE, PDH_HCOUNTER, PDH_HQUERY, PDH_MORE_DATA, PdhAddEnglishCounterW,
    PdhCloseQuery, PdhCollectQueryData, PdhGetFormattedCounterArrayW, PdhOpenQueryW,
};
use windows::Win32::System::Threading::{
    OpenProcess, PROCESS_NAME_WIN32, PROCESS_QUERY_LIMITED_INFORMATION, QueryFullProcessImageNameW,
};
use windows::core::{PCWSTR, PWSTR, w};

use super::pdh_names::{Luid, PdhInstance, engine_usage, parse_instance};
use crate::devices::MetricSource;
use crate::devices::status::{DeviceStatus, GpuProcess, Reading, fill};

/// An adapter as DXGI describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct DxgiAdapter {
    pub name: String,
    pub vendor_id: u32,
    pub device_id: u32,
    pub luid: Luid,
    pub dedicated_video_memory: u64,
    pub shared_system_memory: u64,
    pub software: bool,
}

/// Every adapter DXGI enumerates, in its order.
pub fn list_adapters() -> Vec<DxgiAdapter> {
    let factory: IDXGIFactory1 = match unsafe { CreateDXGIFactory1() } {
        Ok(factory) => factory,
        Err(error) => {
            tracing::debug!("DXGI factory: {error}");
            return Vec::new();
        }
    };
    let mut adapters = Vec::new();
    for index in 0.. {
        let Ok(adapter) = (unsafe { factory.EnumAdapters1(index) }) else { break };
        let Ok(desc) = (unsafe { adapter.GetDesc1() }) else { continue };
        let end = desc.Description.iter().position(|&c| c == 0).unwrap_or(desc.Description.len());
        adapters.push(DxgiAdapter {
            name: String::from_utf16_lossy(&desc.Description[..end]),
            vendor_id: desc.VendorId,
            device_id: desc.DeviceId,
            luid: (desc.AdapterLuid.HighPart, desc.AdapterLuid.LowPart),
            dedicated_video_memory: desc.DedicatedVideoMemory as u64,
            shared_system_memory: desc.SharedSystemMemory as u64,
            software: desc.Flags & (DXGI_ADAPTER_FLAG_SOFTWARE.0 as u32) != 0,
        });
    }
    adapters
}

/// The three GPU counter sets, collected together once per sample.
pub struct PdhSource {
    query: PDH_HQUERY,
    engine: PDH_HCOUNTER,
    adapter_memory: PDH_HCOUNTER,
    process_memory: PDH_HCOUNTER,
    error: Option<String>,
}

// The query handle is used only from the telemetry thread that owns the source.
unsafe impl Send for PdhSource {}

impl PdhSource {
    pub fn open() -> Self {
        let mut source = Self {
            query: PDH_HQUERY::default(),
            engine: PDH_HCOUNTER::default(),
            adapter_memory: PDH_HCOUNTER::default(),
            process_memory: PDH_HCOUNTER::default(),
            error: None,
        };
        let status = unsafe { PdhOpenQueryW(PCWSTR::null(), 0, &mut source.query) };
        if status != 0 {
            source.error = Some(format!("PdhOpenQuery failed (0x{status:08x})"));
            return source;
        }
        let counters = [
            (w!("\\GPU Engine(*)\\Utilization Percentage"), &mut source.engine),
            (w!("\\GPU Adapter Memory(*)\\Dedicated Usage"), &mut source.adapter_memory),
            (w!("\\GPU Process Memory(*)\\Dedicated Usage"), &mut source.process_memory),
        ];
        for (path, counter) in counters {
            let status = unsafe { PdhAddEnglishCounterW(source.query, path, 0, counter) };
            if status != 0 {
                source.error = Some(format!(
                    "the GPU performance counters are missing (0x{status:08x}); Windows 10 1709 or later has them"
                ));
            }
        }
        // Utilisation is a rate: the first collection sets the baseline.
        unsafe { PdhCollectQueryData(source.query) };
        source
    }

    pub fn unavailable_reason(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// One collection, spread over the adapters it names.
    pub fn collect(&mut self) -> HashMap<Luid, PdhAdapterUsage> {
        let mut usage: HashMap<Luid, PdhAdapterUsage> = HashMap::new();
        if self.error.is_some() || unsafe { PdhCollectQueryData(self.query) } != 0 {
            return usage;
        }
        let engines = read_array(self.engine);
        for (luid, engine) in engine_usage(&engines) {
            let entry = usage.entry(luid).or_default();
            entry.utilization_percent = Some(engine.utilization_percent);
            entry.process_percent = engine.process_percent;
        }
        for (instance, bytes) in read_array(self.adapter_memory) {
            let entry = usage.entry(instance.luid).or_default();
            *entry.memory_used_bytes.get_or_insert(0) += bytes as u64;
        }
        for (instance, bytes) in read_array(self.process_memory) {
            if let Some(pid) = instance.pid {
                *usage.entry(instance.luid).or_default().process_memory.entry(pid).or_default() += bytes as u64;
            }
        }
        usage
    }
}

impl Drop for PdhSource {
    fn drop(&mut self) {
        if !self.query.is_invalid() {
            unsafe { PdhCloseQuery(self.query) };
        }
    }
}

/// What the counters say about one adapter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PdhAdapterUsage {
    pub utilization_percent: Option<f64>,
    pub memory_used_bytes: Option<u64>,
    pub process_memory: HashMap<u32, u64>,
    pub process_percent: HashMap<u32, f64>,
}

impl PdhAdapterUsage {
    pub fn apply(
        &self,
        adapter: &DxgiAdapter,
        status: &mut DeviceStatus,
        process_name: &dyn Fn(u32) -> String,
        kiln_pid: u32,
    ) {
        fill(&mut status.utilization_percent, self.utilization_percent, MetricSource::Pdh);
        fill(&mut status.memory_used_bytes, self.memory_used_bytes, MetricSource::Pdh);
        fill(&mut status.memory_total_bytes, Some(adapter.dedicated_video_memory), MetricSource::Dxgi);
        if status.processes.is_none() {
            let mut processes: Vec<GpuProcess> = self
                .process_memory
                .iter()
                .filter(|(_, bytes)| **bytes > 0)
                .map(|(pid, bytes)| GpuProcess {
                    pid: *pid,
                    name: process_name(*pid),
                    memory_bytes: Some(*bytes),
                    engine_percent: self.process_percent.get(pid).copied(),
                    kind: "graphics".to_owned(),
                    is_kiln: *pid == kiln_pid,
                })
                .collect();
            processes.sort_by_key(|p| std::cmp::Reverse(p.memory_bytes.unwrap_or(0)));
            status.processes = Some(Reading::new(processes, MetricSource::Pdh));
        }
    }
}

fn read_array(counter: PDH_HCOUNTER) -> Vec<(PdhInstance, f64)> {
    let mut size = 0u32;
    let mut count = 0u32;
    let status = unsafe { PdhGetFormattedCounterArrayW(counter, PDH_FMT_DOUBLE, &mut size, &mut count, None) };
    if status != PDH_MORE_DATA || size == 0 {
        return Vec::new();
    }
    // The buffer holds the items followed by the strings their names point into.
    let item_size = std::mem::size_of::<PDH_FMT_COUNTERVALUE_ITEM_W>();
    let mut buffer: Vec<PDH_FMT_COUNTERVALUE_ITEM_W> = Vec::with_capacity((size as usize).div_ceil(item_size));
    let status = unsafe {
        PdhGetFormattedCounterArrayW(counter, PDH_FMT_DOUBLE, &mut size, &mut count, Some(buffer.as_mut_ptr()))
    };
    if status != 0 {
        return Vec::new();
    }
    unsafe { buffer.set_len(count as usize) };
    buffer
        .iter()
        .filter(|item| item.FmtValue.CStatus == 0)
        .filter_map(|item| {
            let name = unsafe { item.szName.to_string() }.ok()?;
            let value = unsafe { item.FmtValue.Anonymous.doubleValue };
            Some((parse_instance(&name)?, value))
        })
        .collect()
}

/// The executable's file name of a process, empty when Windows will not say (another user's
/// elevated process, or one that has exited).
pub fn process_name(pid: u32) -> String {
    let Ok(handle) = (unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, false, pid) }) else {
        return String::new();
    };
    let mut buffer = [0u16; 1024];
    let mut size = buffer.len() as u32;
    let name = unsafe { QueryFullProcessImageNameW(handle, PROCESS_NAME_WIN32, PWSTR(buffer.as_mut_ptr()), &mut size) }
        .map(|_| String::from_utf16_lossy(&buffer[..size as usize]))
        .unwrap_or_default();
    unsafe {
        let _ = CloseHandle(handle);
    }
    name.rsplit(['\\', '/']).next().unwrap_or_default().to_owned()
}
