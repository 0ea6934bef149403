//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the regression test that replays
//! their crashes (`tests/fuzz_regressions.rs`). Not part of the stable API.
#![doc(hidden)]

use std::sync::{Arc, OnceLock};

use crate::{Engine, ExtractOptions, Scanner};

fn engine() -> Arc<Engine> {
    static E: OnceLock<Arc<Engine>> = OnceLock::new();
    E.get_or_init(|| {
        Arc::new(
            Engine::builder()
                .rules_str("[[detector]]\nid = \"code\"\nregex = '[0-9]{4}-[0-9]{4}'\n[[keywords]]\nid = \"kw\"\nterms = [\"社外秘\", \"Project Falcon\"]\n")
                .build()
                .expect("fuzzing rules"),
        )
    })
    .clone()
}

/// Inspects `data` as a file called `name`, with tight limits so each run stays short.
pub fn inspect(name: &str, data: &[u8]) {
    let mut opts = ExtractOptions::default();
    opts.limits.entry_bytes = 4 << 20;
    opts.limits.message_decompressed = 16 << 20;
    opts.limits.time_budget = std::time::Duration::from_secs(5);
    let mut s = Scanner::new(engine());
    let r = s.inspect_file(name, data, &opts);
    for f in &r.findings {
        assert!(f.start <= f.end);
    }
}

/// Scans `data` as text.
pub fn scan(data: &[u8]) {
    let mut s = Scanner::new(engine());
    let r = s.scan(data);
    for f in r.findings {
        assert!(f.start < f.end && f.end <= data.len());
    }
}
