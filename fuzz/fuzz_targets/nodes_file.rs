#![no_main]
//! `jobhost::fuzzing::nodes_file` (its doc says what the input is).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = jobhost::fuzzing::nodes_file(data);
});
