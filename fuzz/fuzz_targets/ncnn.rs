//! ncnn `.param` text and `.bin` weights: the input is split at the first NUL into the two
//! files; any split gives a state dict or a typed error.
#![no_main]

use std::path::Path;

use kiln_models::formats::ncnn;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let Ok(param) = std::str::from_utf8(&data[..split]) else { return };
    let bin = data.get(split + 1..).unwrap_or(&[]);
    let _ = ncnn::read_parts(Path::new("fuzz.param"), param, Path::new("fuzz.bin"), bin);
});
