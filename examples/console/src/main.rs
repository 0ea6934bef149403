//! `ping32dlp-console`: the web console for approvers and administrators. Everything is in the
//! library (`src/lib.rs`).
//!
//! ```text
//! ping32dlp-console                          # embedded defaults: http://127.0.0.1:8025,
//!                                            # default state directory, built-in policy
//! ping32dlp-console --config /etc/ping32dlp/console.toml
//! ping32dlp-console hash-password < pw.txt   # an Argon2id hash for an [[account]]
//! ```

#![forbid(unsafe_code)]

fn main() {
    ping32dlp_console::main()
}
