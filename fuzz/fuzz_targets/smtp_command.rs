//! Fuzz target: any bytes as one SMTP command line of a client of the proxy. A MAIL or RCPT
//! that parses must be forwarded as a line that parses back to the same address (the judged
//! recipient is the forwarded one).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ping32dlp_proxy::fuzz_command(data);
});
