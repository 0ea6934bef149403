//! Fuzz target: any bytes as a rules file (TOML), built into an engine.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ping32dlp::fuzzing::rules(data);
});
