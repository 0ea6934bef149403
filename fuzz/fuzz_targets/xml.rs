//! Fuzz target: any text as an XML part (a worksheet, a document body): the walk's own
//! tokenizer must give the very events, and fail at the same place, as quick-xml on every input
//! it takes (see src/extract/xml.rs and fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ping32dlp::fuzzing::xml(data);
});
