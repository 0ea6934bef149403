//! Fuzz target: any bytes as one HTTP request to the web console's routes (anonymous: sign-in,
//! links, redirects, CSRF checks, forms, cookies, queries), and the same request to the
//! download listener's (`/d/<token>`: landing page, password form, refusals).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ping32dlp_console::fuzz_request(data);
});
