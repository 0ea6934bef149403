//! Fuzz target: any bytes as `list.csv`: the CSV cell splitter, header finding and table-aware
//! scoring (see fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ping32dlp::fuzzing::inspect("list.csv", data);
});
