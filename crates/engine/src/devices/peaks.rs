//! Vendors' published peak figures for well-known cards, shown beside Kiln's measured benchmark
//! so a reader can see how much of the hardware a backend reaches.
//!
//! Dense (no sparsity) figures from the vendors' datasheets; FP16 is the tensor-core/matrix-core
//! rate with FP32 accumulation where the vendor states both.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct PublishedPeaks {
    /// The card the figures are for.
    pub card: String,
    pub fp32_tflops: f64,
    pub fp16_tflops: f64,
    pub memory_gb_per_s: f64,
    /// Where the figures come from.
    pub source: String,
}

/// (name fragment to match, card, fp32, fp16 dense, GB/s, source). More specific fragments first.
const TABLE: &[(&str, &str, f64, f64, f64, &str)] = &[
    (
        "H200",
        "NVIDIA H200 SXM",
        67.0,
        989.5,
        4800.0,
        "NVIDIA H200 Tensor Core GPU datasheet (FP16 1979 TFLOPS with sparsity)",
    ),
    ("H100 NVL", "NVIDIA H100 NVL", 60.0, 835.0, 3900.0, "NVIDIA H100 datasheet (FP16 1671 TFLOPS with sparsity)"),
    ("H100 PCIe", "NVIDIA H100 PCIe", 51.0, 756.5, 2000.0, "NVIDIA H100 datasheet (FP16 1513 TFLOPS with sparsity)"),
    ("H100", "NVIDIA H100 SXM5", 67.0, 989.5, 3350.0, "NVIDIA H100 datasheet (FP16 1979 TFLOPS with sparsity)"),
    ("A100-SXM4-80GB", "NVIDIA A100 80GB SXM", 19.5, 312.0, 2039.0, "NVIDIA A100 datasheet"),
    ("A100 80GB PCIe", "NVIDIA A100 80GB PCIe", 19.5, 312.0, 1935.0, "NVIDIA A100 datasheet"),
    ("A100", "NVIDIA A100 40GB", 19.5, 312.0, 1555.0, "NVIDIA A100 datasheet"),
    ("L40S", "NVIDIA L40S", 91.6, 362.05, 864.0, "NVIDIA L40S datasheet (FP16 733 TFLOPS with sparsity)"),
    ("RTX 4090", "NVIDIA GeForce RTX 4090", 82.6, 165.2, 1008.0, "NVIDIA Ada Lovelace architecture whitepaper"),
    ("RTX 4080", "NVIDIA GeForce RTX 4080", 48.7, 97.5, 716.8, "NVIDIA Ada Lovelace architecture whitepaper"),
    ("RTX 3090", "NVIDIA GeForce RTX 3090", 35.6, 71.0, 936.0, "NVIDIA Ampere GA102 whitepaper"),
    ("RX 7900 XTX", "AMD Radeon RX 7900 XTX", 61.4, 122.8, 960.0, "AMD Radeon RX 7900 XTX specifications"),
    ("MI300X", "AMD Instinct MI300X", 163.4, 1307.4, 5300.0, "AMD Instinct MI300X datasheet"),
];

/// The published figures for a card of this name, if Kiln knows the card.
pub fn lookup(name: &str) -> Option<PublishedPeaks> {
    TABLE.iter().find(|row| name.contains(row.0)).map(|&(_, card, fp32, fp16, bw, source)| PublishedPeaks {
        card: card.to_owned(),
        fp32_tflops: fp32,
        fp16_tflops: fp16,
        memory_gb_per_s: bw,
        source: source.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cards_by_the_names_drivers_report() {
        assert_eq!(lookup("NVIDIA H100 80GB HBM3").unwrap().card, "NVIDIA H100 SXM5");
        assert_eq!(lookup("NVIDIA H100 PCIe").unwrap().memory_gb_per_s, 2000.0);
        assert_eq!(lookup("NVIDIA H200").unwrap().memory_gb_per_s, 4800.0);
        assert!(lookup("llvmpipe (LLVM 15.0.6, 256 bits)").is_none());
    }
}
