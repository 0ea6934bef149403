//! Fuzz target: any bytes as one HTTP request to the web console's routes (anonymous: sign-in,
//! links, redirects, CSRF checks, forms, cookies, queries).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ping32dlp_console::fuzz_request(data);
});
