//! Where jobs nobody pinned to a device go: the device that is fastest for them.
//!
//! First by the kind of device: hardware GPUs take them all; without one, the CPU backend before
//! a software rasteriser (on a 2-core machine a 256×256 upscale with the bundled model took
//! 181 s on lavapipe and 7.3 s on the CPU backend). Then by what Kiln measured on this machine:
//! the speed of the last finished jobs on each device, per model (output megapixels a second,
//! decode and encode included: what a user waits for). A software GPU takes unpinned work only
//! where it measured faster than the CPU on the models both ran. A job pinned to a device runs
//! there whatever this says.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::devices::{DeviceId, DeviceKind};
use crate::postprocessing::upscale::UpscaleOutcome;

/// How fast one device ran one model, from its finished jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ModelSpeed {
    /// The model file's name.
    pub model: String,
    /// Output megapixels a second over the jobs counted.
    pub megapixels_per_second: f64,
    pub jobs: u32,
}

/// Whether a device takes unpinned jobs, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub takes_any: bool,
    pub reason: String,
}

/// The models' speeds on each device, from finished upscale steps (newest first is fine: every
/// one counts the same).
pub fn speeds<'a>(outcomes: impl IntoIterator<Item = &'a UpscaleOutcome>) -> HashMap<DeviceId, Vec<ModelSpeed>> {
    // (device, model) -> (output megapixels, seconds, jobs)
    let mut sums: BTreeMap<(DeviceId, String), (f64, f64, u32)> = BTreeMap::new();
    for outcome in outcomes {
        if outcome.seconds <= 0.0 {
            continue;
        }
        let model = Path::new(&outcome.model)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| outcome.model.clone());
        let megapixels = outcome.output_width as f64 * outcome.output_height as f64 / 1e6;
        let sum = sums.entry((outcome.device_id.clone(), model)).or_default();
        *sum = (sum.0 + megapixels, sum.1 + outcome.seconds, sum.2 + 1);
    }
    let mut speeds: HashMap<DeviceId, Vec<ModelSpeed>> = HashMap::new();
    for ((device, model), (megapixels, seconds, jobs)) in sums {
        speeds.entry(device).or_default().push(ModelSpeed { model, megapixels_per_second: megapixels / seconds, jobs });
    }
    speeds
}

fn is_hardware(kind: DeviceKind) -> bool {
    !matches!(kind, DeviceKind::Cpu | DeviceKind::SoftwareGpu)
}

/// Whether `candidate` measured faster than `against` on the models both ran: `Some` with the
/// comparison in words when they share a model, `None` when they share none.
fn compare(candidate: &[ModelSpeed], against: &[ModelSpeed]) -> Option<(bool, String)> {
    let mut faster = 0;
    let mut shared = Vec::new();
    for mine in candidate {
        if let Some(theirs) = against.iter().find(|s| s.model == mine.model) {
            shared.push(format!(
                "{}: {:.3} against {:.3} MPx/s",
                mine.model, mine.megapixels_per_second, theirs.megapixels_per_second
            ));
            if mine.megapixels_per_second > theirs.megapixels_per_second {
                faster += 1;
            }
        }
    }
    (!shared.is_empty()).then(|| (faster * 2 > shared.len(), shared.join("; ")))
}

/// The route of each computing device (`id`, `kind`), given the speeds measured so far.
pub fn routes(devices: &[(DeviceId, DeviceKind)], speeds: &HashMap<DeviceId, Vec<ModelSpeed>>) -> Vec<Route> {
    let none = Vec::new();
    let speed = |id: &DeviceId| speeds.get(id).unwrap_or(&none);
    if devices.iter().any(|(_, kind)| is_hardware(*kind)) {
        return devices
            .iter()
            .map(|(_, kind)| match is_hardware(*kind) {
                true => Route { takes_any: true, reason: "a hardware GPU: takes jobs no one pinned".into() },
                false => Route {
                    takes_any: false,
                    reason: "jobs no one pinned go to the hardware GPUs; pinned jobs run here".into(),
                },
            })
            .collect();
    }
    let cpu = devices.iter().find(|(_, kind)| *kind == DeviceKind::Cpu);
    // Without a CPU device (none here has compute), the first software GPU takes them.
    let Some((cpu_id, _)) = cpu else {
        return devices
            .iter()
            .enumerate()
            .map(|(i, _)| Route {
                takes_any: i == 0,
                reason: if i == 0 { "the only kind of device here".into() } else { "another device takes them".into() },
            })
            .collect();
    };
    // A software GPU that measured faster than the CPU on their shared models takes them; the
    // fastest such one, by its best shared comparison.
    let faster: Vec<(usize, String)> = devices
        .iter()
        .enumerate()
        .filter(|(_, (_, kind))| *kind == DeviceKind::SoftwareGpu)
        .filter_map(|(i, (id, _))| match compare(speed(id), speed(cpu_id)) {
            Some((true, words)) => Some((i, words)),
            _ => None,
        })
        .collect();
    let chosen = faster.first().map(|(i, _)| *i);
    devices
        .iter()
        .enumerate()
        .map(|(i, (id, kind))| match (*kind, chosen) {
            (DeviceKind::Cpu, None) => {
                let reason = devices
                    .iter()
                    .filter(|(_, k)| *k == DeviceKind::SoftwareGpu)
                    .find_map(|(other, _)| compare(speed(id), speed(other)))
                    .map_or(
                        "no hardware GPU: the CPU backend comes before a software rasteriser".to_owned(),
                        |(_, words)| format!("measured faster than the software GPU ({words})"),
                    );
                Route { takes_any: true, reason }
            }
            (DeviceKind::Cpu, Some(_)) => {
                Route { takes_any: false, reason: "the software GPU measured faster on this machine".into() }
            }
            (_, Some(c)) if c == i => {
                let words = &faster[0].1;
                Route { takes_any: true, reason: format!("measured faster than the CPU ({words})") }
            }
            _ => Route {
                takes_any: false,
                reason: "a software rasteriser: jobs no one pinned go to the CPU backend unless this measures faster"
                    .into(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> DeviceId {
        DeviceId(s.into())
    }

    fn outcome(device: &str, model: &str, seconds: f64) -> UpscaleOutcome {
        UpscaleOutcome {
            output: "out.png".into(),
            input_width: 250,
            input_height: 250,
            output_width: 1000,
            output_height: 1000,
            model: format!("/models/{model}"),
            model_autov2: None,
            device_id: id(device),
            precision: crate::nets::Precision::F32,
            tile: 256,
            tta: false,
            seconds,
        }
    }

    #[test]
    fn speeds_are_output_megapixels_a_second_per_device_and_model() {
        let outcomes = [outcome("cpu", "a.pth", 2.0), outcome("cpu", "a.pth", 6.0), outcome("gl", "a.pth", 1.0)];
        let speeds = speeds(&outcomes);
        assert_eq!(
            speeds[&id("cpu")],
            vec![ModelSpeed { model: "a.pth".into(), megapixels_per_second: 0.25, jobs: 2 }]
        );
        assert_eq!(speeds[&id("gl")][0].megapixels_per_second, 1.0);
    }

    #[test]
    fn without_a_hardware_gpu_the_cpu_comes_before_a_software_rasteriser() {
        let devices = [(id("cpu"), DeviceKind::Cpu), (id("gl"), DeviceKind::SoftwareGpu)];
        let routes = routes(&devices, &HashMap::new());
        assert!(routes[0].takes_any && !routes[1].takes_any, "{routes:?}");
        // Measured: the software GPU slower on the shared model keeps the CPU first, and says so.
        let measured = speeds(&[outcome("cpu", "a.pth", 7.3), outcome("gl", "a.pth", 181.0)]);
        let routes = super::routes(&devices, &measured);
        assert!(routes[0].takes_any && !routes[1].takes_any);
        assert!(routes[0].reason.contains("a.pth"), "{}", routes[0].reason);
    }

    #[test]
    fn a_software_gpu_measured_faster_than_the_cpu_takes_unpinned_jobs() {
        let devices = [(id("cpu"), DeviceKind::Cpu), (id("gl"), DeviceKind::SoftwareGpu)];
        let measured =
            speeds(&[outcome("cpu", "a.pth", 20.0), outcome("gl", "a.pth", 4.0), outcome("gl", "b.pth", 1.0)]);
        let routes = routes(&devices, &measured);
        assert!(!routes[0].takes_any && routes[1].takes_any, "{routes:?}");
        assert!(routes[1].reason.contains("measured faster"));
    }

    #[test]
    fn hardware_gpus_take_unpinned_jobs_whatever_else_is_there() {
        let devices = [
            (id("cpu"), DeviceKind::Cpu),
            (id("gl"), DeviceKind::SoftwareGpu),
            (id("pci:1"), DeviceKind::DiscreteGpu),
            (id("pci:2"), DeviceKind::IntegratedGpu),
        ];
        let taking: Vec<bool> = routes(&devices, &HashMap::new()).iter().map(|r| r.takes_any).collect();
        assert_eq!(taking, [false, false, true, true]);
    }
}
