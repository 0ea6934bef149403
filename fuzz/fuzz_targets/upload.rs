//! Fuzz target: any bytes as an upload body (the first byte picks the content type and the
//! content encoding) through the webmail hook's decoders.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ping32dlp_icap::fuzz_upload(data);
});
