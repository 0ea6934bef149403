//! Fuzz target: any bytes as `document.docx` through extraction and detection (see fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ping32dlp::fuzzing::inspect("document.docx", data);
});
