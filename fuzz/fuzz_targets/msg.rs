//! Fuzz target: any bytes as `mail.msg` (an Outlook item) through extraction and detection
//! (see fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ping32dlp::fuzzing::inspect("mail.msg", data);
});
