//! Ring buffers of each device's recent readings, for the history charts.
//!
//! One fixed-size row per sample and device (a timestamp and one slot per charted metric), so a
//! sampler running for days holds exactly `capacity` rows per device.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::{DeviceId, DeviceStatus};

/// A metric the charts plot over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum SeriesMetric {
    Utilization,
    MemoryUsed,
    Temperature,
    Power,
    ClockGraphics,
    ClockMemory,
    Fan,
    PcieTx,
    PcieRx,
}

impl SeriesMetric {
    pub const ALL: [SeriesMetric; 9] = [
        Self::Utilization,
        Self::MemoryUsed,
        Self::Temperature,
        Self::Power,
        Self::ClockGraphics,
        Self::ClockMemory,
        Self::Fan,
        Self::PcieTx,
        Self::PcieRx,
    ];

    pub fn unit(self) -> &'static str {
        match self {
            Self::Utilization | Self::Fan => "%",
            Self::MemoryUsed => "B",
            Self::Temperature => "°C",
            Self::Power => "W",
            Self::ClockGraphics | Self::ClockMemory => "MHz",
            Self::PcieTx | Self::PcieRx => "B/s",
        }
    }

    pub fn read(self, status: &DeviceStatus) -> Option<f64> {
        match self {
            Self::Utilization => status.utilization_percent.as_ref().map(|r| r.value),
            Self::MemoryUsed => status.memory_used_bytes.as_ref().map(|r| r.value as f64),
            Self::Temperature => status.temperature_c.as_ref().map(|r| r.value),
            Self::Power => status.power_watts.as_ref().map(|r| r.value),
            Self::ClockGraphics => status.clock_graphics_mhz.as_ref().map(|r| r.value),
            Self::ClockMemory => status.clock_memory_mhz.as_ref().map(|r| r.value),
            Self::Fan => status.fan_percent.as_ref().map(|r| r.value),
            Self::PcieTx => status.pcie_tx_bytes_per_s.as_ref().map(|r| r.value),
            Self::PcieRx => status.pcie_rx_bytes_per_s.as_ref().map(|r| r.value),
        }
    }
}

const METRICS: usize = SeriesMetric::ALL.len();

/// A device's history in columns, ready for a chart: one timestamp per row and one value list per
/// metric (`null` where the metric was not read). Metrics never read are left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct DeviceHistory {
    pub device_id: DeviceId,
    /// Unix milliseconds of each row.
    pub t_ms: Vec<u64>,
    pub series: Vec<Series>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Series {
    pub metric: SeriesMetric,
    pub unit: String,
    pub values: Vec<Option<f64>>,
}

#[derive(Debug, Default)]
struct Ring {
    t_ms: VecDeque<u64>,
    rows: VecDeque<[f64; METRICS]>,
}

/// Every device's ring buffer.
#[derive(Debug)]
pub struct History {
    capacity: usize,
    devices: HashMap<DeviceId, Ring>,
}

impl History {
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), devices: HashMap::new() }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Resizes every buffer, dropping the oldest rows if it shrinks.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        for ring in self.devices.values_mut() {
            while ring.t_ms.len() > self.capacity {
                ring.t_ms.pop_front();
                ring.rows.pop_front();
            }
        }
    }

    pub fn push(&mut self, statuses: &[DeviceStatus]) {
        for status in statuses {
            let ring = self.devices.entry(status.device_id.clone()).or_default();
            if ring.t_ms.len() == self.capacity {
                ring.t_ms.pop_front();
                ring.rows.pop_front();
            }
            let mut row = [f64::NAN; METRICS];
            for (slot, metric) in row.iter_mut().zip(SeriesMetric::ALL) {
                if let Some(value) = metric.read(status) {
                    *slot = value;
                }
            }
            ring.t_ms.push_back(status.sampled_at_ms);
            ring.rows.push_back(row);
        }
    }

    /// Rows newer than `since_ms` (all rows when `None`); `None` for a device never sampled.
    pub fn get(&self, device: &DeviceId, since_ms: Option<u64>) -> Option<DeviceHistory> {
        let ring = self.devices.get(device)?;
        let start = since_ms.map_or(0, |since| ring.t_ms.partition_point(|t| *t <= since));
        let series = SeriesMetric::ALL
            .iter()
            .enumerate()
            .filter_map(|(i, metric)| {
                let values: Vec<Option<f64>> =
                    ring.rows.range(start..).map(|row| (!row[i].is_nan()).then_some(row[i])).collect();
                values.iter().any(Option::is_some).then(|| Series {
                    metric: *metric,
                    unit: metric.unit().to_owned(),
                    values,
                })
            })
            .collect();
        Some(DeviceHistory { device_id: device.clone(), t_ms: ring.t_ms.range(start..).copied().collect(), series })
    }

    pub fn forget_others(&mut self, keep: &[DeviceId]) {
        self.devices.retain(|id, _| keep.contains(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{MetricSource, Reading};

    fn status(t: u64, util: Option<f64>) -> DeviceStatus {
        let mut s = DeviceStatus::new(DeviceId::cpu(), t);
        s.utilization_percent = util.map(|u| Reading::new(u, MetricSource::Sysinfo));
        s
    }

    #[test]
    fn keeps_exactly_capacity_rows() {
        let mut history = History::new(3);
        for t in 0..10 {
            history.push(&[status(t, Some(t as f64))]);
        }
        let h = history.get(&DeviceId::cpu(), None).unwrap();
        assert_eq!(h.t_ms, vec![7, 8, 9]);
        assert_eq!(h.series.len(), 1, "only metrics ever read are sent");
        assert_eq!(h.series[0].values, vec![Some(7.0), Some(8.0), Some(9.0)]);
    }

    #[test]
    fn gaps_stay_gaps_and_since_filters() {
        let mut history = History::new(10);
        history.push(&[status(1, Some(5.0))]);
        history.push(&[status(2, None)]);
        history.push(&[status(3, Some(7.0))]);
        let h = history.get(&DeviceId::cpu(), Some(1)).unwrap();
        assert_eq!(h.t_ms, vec![2, 3]);
        assert_eq!(h.series[0].values, vec![None, Some(7.0)]);
        assert!(history.get(&DeviceId("nope".into()), None).is_none());
    }

    #[test]
    fn shrinking_drops_the_oldest() {
        let mut history = History::new(5);
        for t in 0..5 {
            history.push(&[status(t, Some(1.0))]);
        }
        history.set_capacity(2);
        assert_eq!(history.get(&DeviceId::cpu(), None).unwrap().t_ms, vec![3, 4]);
    }

    #[test]
    fn ten_minutes_at_one_hertz_fits_the_default() {
        assert!(crate::settings::TelemetrySettings::default().history_rows() >= 600);
    }
}
