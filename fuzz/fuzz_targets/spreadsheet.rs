//! Fuzz target: any bytes as `book.xlsx` through extraction and detection (see fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ping32dlp::fuzzing::inspect("book.xlsx", data);
});
