//! `ping32dlp-proxy`: the endpoint SMTP submission proxy. Everything is in the library
//! (`src/lib.rs`).
//!
//! ```text
//! ping32dlp-proxy                       # embedded defaults: 127.0.0.1:10587 (plain + STARTTLS)
//!                                       # and 127.0.0.1:10465 (implicit TLS), upstream
//!                                       # 127.0.0.1:25, built-in rules, monitor-mode policy
//! ping32dlp-proxy --config /etc/ping32dlp/proxy.toml
//! ping32dlp-proxy --check-config FILE
//! ```

#![forbid(unsafe_code)]

fn main() {
    ping32dlp_proxy::main()
}
