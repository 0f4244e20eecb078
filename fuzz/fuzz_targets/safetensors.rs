//! safetensors headers and offsets: any bytes give a state dict or a typed error, and every
//! tensor a dict names lies inside the file.
#![no_main]

use std::path::Path;

use kiln_models::formats::safetensors;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(dict) = safetensors::read(Path::new("fuzz.safetensors"), data) {
        for tensor in dict.tensors.values() {
            let len = tensor.numel() as u64 * tensor.dtype.size() as u64;
            assert!(tensor.data.offset + len <= data.len() as u64);
        }
    }
});
