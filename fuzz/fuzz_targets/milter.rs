//! Fuzz target: any bytes as what an MTA sends on one milter connection (packets in a row),
//! into a real session over a real pipeline and state directory.
#![no_main]

use std::sync::OnceLock;

static SHARED: OnceLock<(&'static ping32dlp_milter::Shared, tempfile::TempDir)> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (sh, _) = SHARED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ping32dlp_milter::Config {
            dlp: ping32dlp::service::DlpSettings {
                state_dir: Some(dir.path().join("state")),
                ..Default::default()
            },
            max_message_bytes: 1 << 20,
            spill_bytes: 64 << 10,
            ..ping32dlp_milter::Config::default()
        };
        let sh: &'static _ = Box::leak(Box::new(ping32dlp_milter::build(cfg).unwrap()));
        (sh, dir)
    });
    ping32dlp_milter::fuzz_session(sh, data);
});
