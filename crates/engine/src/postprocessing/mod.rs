//! The postprocessing domain: image files in and out, tiling for images of any size, and the
//! upscale step the queue runs. Enhancement and safety checks come later.

pub mod images;
pub mod tiling;
pub mod upscale;
