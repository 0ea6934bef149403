//! Fuzz target: any bytes through the detection engine (built-ins plus a user regex, keywords).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ping32dlp::fuzzing::scan(data);
});
