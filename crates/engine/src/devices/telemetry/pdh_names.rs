//! Windows GPU performance-counter instance names, and how Task Manager adds them up.
//!
//! The counters `\GPU Engine(*)\Utilization Percentage`, `\GPU Process Memory(*)\Dedicated Usage`
//! and `\GPU Adapter Memory(*)\Dedicated Usage` name their instances like
//! `pid_1234_luid_0x00000000_0x0000D1B2_phys_0_eng_3_engtype_Compute`. This parser is plain
//! string work, so it is tested on every platform; only the counter queries are Windows-only.

use std::collections::HashMap;

/// An adapter's locally unique id (DXGI `AdapterLuid`), high part then low part.
pub type Luid = (i32, u32);

/// One parsed counter instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdhInstance {
    pub pid: Option<u32>,
    pub luid: Luid,
    pub phys: u32,
    pub engine: Option<u32>,
    pub engine_type: Option<String>,
}

pub fn parse_instance(name: &str) -> Option<PdhInstance> {
    let mut parts = name.split('_');
    let mut instance = PdhInstance { pid: None, luid: (0, 0), phys: 0, engine: None, engine_type: None };
    let mut has_luid = false;
    while let Some(key) = parts.next() {
        match key {
            "pid" => instance.pid = parts.next()?.parse().ok(),
            "luid" => {
                let high = u32::from_str_radix(parts.next()?.trim_start_matches("0x"), 16).ok()?;
                let low = u32::from_str_radix(parts.next()?.trim_start_matches("0x"), 16).ok()?;
                instance.luid = (high as i32, low);
                has_luid = true;
            }
            "phys" => instance.phys = parts.next()?.parse().ok()?,
            "eng" => instance.engine = parts.next()?.parse().ok(),
            // The type is the rest of the name and may itself contain underscores.
            "engtype" => {
                let rest: Vec<&str> = parts.by_ref().collect();
                instance.engine_type = Some(rest.join("_"));
            }
            _ => {}
        }
    }
    has_luid.then_some(instance)
}

/// Per adapter: the busiest engine's utilisation and each process's share of its busiest
/// engine, as Task Manager computes them (sum over processes per engine, then the maximum).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineUsage {
    pub utilization_percent: f64,
    pub process_percent: HashMap<u32, f64>,
}

pub fn engine_usage(samples: &[(PdhInstance, f64)]) -> HashMap<Luid, EngineUsage> {
    let mut per_engine: HashMap<(Luid, u32, u32), f64> = HashMap::new();
    let mut per_process: HashMap<(Luid, u32), f64> = HashMap::new();
    for (instance, value) in samples {
        let engine = (instance.luid, instance.phys, instance.engine.unwrap_or(0));
        *per_engine.entry(engine).or_default() += value;
        if let Some(pid) = instance.pid {
            let slot = per_process.entry((instance.luid, pid)).or_default();
            *slot = slot.max(*value);
        }
    }
    let mut usage: HashMap<Luid, EngineUsage> = HashMap::new();
    for ((luid, _, _), value) in per_engine {
        let entry = usage.entry(luid).or_default();
        entry.utilization_percent = entry.utilization_percent.max(value.min(100.0));
    }
    for ((luid, pid), value) in per_process {
        usage.entry(luid).or_default().process_percent.insert(pid, value.min(100.0));
    }
    usage
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_engine_instances() {
        let instance = parse_instance("pid_1234_luid_0x00000000_0x0000D1B2_phys_0_eng_3_engtype_Compute").unwrap();
        assert_eq!(instance.pid, Some(1234));
        assert_eq!(instance.luid, (0, 0xD1B2));
        assert_eq!(instance.engine, Some(3));
        assert_eq!(instance.engine_type.as_deref(), Some("Compute"));
    }

    #[test]
    fn parses_adapter_instances_and_odd_engine_types() {
        let adapter = parse_instance("luid_0xFFFFFFFF_0x00010A2C_phys_0").unwrap();
        assert_eq!(adapter.pid, None);
        assert_eq!(adapter.luid, (-1, 0x10A2C));
        let video = parse_instance("pid_8_luid_0x0_0x1_phys_0_eng_5_engtype_Video_Codec_0").unwrap();
        assert_eq!(video.engine_type.as_deref(), Some("Video_Codec_0"));
        assert_eq!(parse_instance("_Total"), None);
    }

    #[test]
    fn utilisation_is_the_busiest_engine_summed_over_processes() {
        let sample = |name: &str, v: f64| (parse_instance(name).unwrap(), v);
        let samples = vec![
            sample("pid_1_luid_0x0_0x10_phys_0_eng_0_engtype_3D", 30.0),
            sample("pid_2_luid_0x0_0x10_phys_0_eng_0_engtype_3D", 25.0),
            sample("pid_2_luid_0x0_0x10_phys_0_eng_1_engtype_Compute", 40.0),
            sample("pid_3_luid_0x0_0x20_phys_0_eng_0_engtype_3D", 5.0),
        ];
        let usage = engine_usage(&samples);
        assert_eq!(usage[&(0, 0x10)].utilization_percent, 55.0);
        assert_eq!(usage[&(0, 0x10)].process_percent[&2], 40.0);
        assert_eq!(usage[&(0, 0x20)].utilization_percent, 5.0);
    }
}
