#![no_main]
//! `jobhost::fuzzing::schedule_request` (its doc says what the input is).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = jobhost::fuzzing::schedule_request(data);
});
