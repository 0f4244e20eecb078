//! The networks Kiln runs, in burn: the upscalers (RRDBNet for ESRGAN, Real-ESRGAN and BSRGAN;
//! SRVGGNetCompact for the compact Real-ESRGAN models), and the loading of their weights from
//! any format `kiln-models` reads.

pub mod compact;
pub mod fused;
pub mod layers;
pub mod rrdbnet;
pub mod upscaler;
pub mod weights;

pub use upscaler::{Kernels, Precision, Upscaler, UpscalerError};
