//! Fuzz target: any bytes as `list.csv` and as `notes.txt`: the CSV cell splitter, the tables
//! inside a text, header finding and table-aware scoring, and the quote-free split checked
//! against csv-core's (see fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ping32dlp::fuzzing::table(data);
});
