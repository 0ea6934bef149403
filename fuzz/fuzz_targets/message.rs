//! Fuzz target: any bytes as `message.eml` through extraction and detection (see fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ping32dlp::fuzzing::inspect("message.eml", data);
});
