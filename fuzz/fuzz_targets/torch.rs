//! PyTorch checkpoints (zip and legacy pickles): any bytes give a state dict or a typed error;
//! nothing is executed, nothing panics, memory stays bounded.
#![no_main]

use std::path::Path;

use kiln_models::formats::torch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = torch::read_bytes(Path::new("fuzz.pth"), data);
});
