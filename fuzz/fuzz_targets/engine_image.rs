//! Fuzz target: any bytes as a saved engine's body (and as a whole image), loaded and used.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ping32dlp::fuzzing::engine_image(data);
});
