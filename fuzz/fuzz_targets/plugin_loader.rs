#![no_main]
//! `jobhost::fuzzing::plugin_loader` (its doc says what the input is).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = jobhost::fuzzing::plugin_loader(data);
});
