//! Fuzz target: any bytes as a policy file (TOML), parsed, checked and evaluated.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ping32dlp::fuzzing::policy(data);
});
