//! Fuzz target: any bytes as one ICAP request to the webmail hook (head, Encapsulated,
//! header sections, chunked body), then its HTTP head and body through the upload decoders.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ping32dlp_icap::fuzz_request(data);
});
