//! `ping32dlp-milter`: the milter (protocol v6, no libmilter). Everything is in the library
//! (`src/lib.rs`).
//!
//! ```text
//! ping32dlp-milter                      # embedded defaults: inet:127.0.0.1:8899, built-in
//!                                       # rules, monitor-mode policy, SQLite in the state dir
//! ping32dlp-milter --config /etc/ping32dlp/milter.toml
//! ping32dlp-milter --check-config FILE  # parse, build rules and policy, print the settings
//! ```

#![forbid(unsafe_code)]

fn main() {
    ping32dlp_milter::main()
}
