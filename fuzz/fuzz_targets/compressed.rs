//! Fuzz target: any bytes as `archive.7z` through extraction and detection (see fuzz/README.md).
//! Sniffing picks the reader from the magic bytes, so the 7z, bzip2, xz, gzip and tar seeds
//! each reach their own reader.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ping32dlp::fuzzing::inspect("archive.7z", data);
});
