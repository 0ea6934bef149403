//! Fuzz target: any bytes as the `PowerPoint Document` stream of a `.ppt` (see fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ping32dlp::fuzzing::ppt_stream(data);
});
