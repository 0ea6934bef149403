//! `ping32dlp-icap`: the webmail hook (ICAP REQMOD server). Everything is in the library
//! (`src/lib.rs`).
//!
//! ```text
//! ping32dlp-icap                       # embedded defaults: 127.0.0.1:1344, service /reqmod,
//!                                      # built-in rules, monitor-mode policy
//! ping32dlp-icap --config /etc/ping32dlp/icap.toml
//! ```

#![forbid(unsafe_code)]

fn main() {
    ping32dlp_icap::main()
}
