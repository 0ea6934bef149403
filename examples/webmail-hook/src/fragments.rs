//! Uploads sent in pieces. Webmail and cloud drives upload large files in chunks, each an
//! HTTP request with `Content-Range: bytes START-END/TOTAL` to one upload-session URL (Microsoft
//! Graph's `uploadUrl`, Google's resumable `upload_id`, tus-like servers). One chunk alone is
//! "corrupt" (a cut zip), so judging chunks one by one lets any document through. The hook
//! keeps the chunks of each session, in memory and bounded, until the file is whole, and
//! judges the whole with the last chunk: blocking it means the server never completes the file.
//!
//! A chunk that cannot be kept (a range that contradicts the session, a file larger than
//! `max_body_bytes`, the memory for sessions used up, a session without a total that never
//! ends) cannot be judged and is [`Outcome::Untrackable`]: the hook treats it as undecodable.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A parsed `Content-Range` of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
    /// Whole size, when known (`*` otherwise).
    pub total: Option<u64>,
}

/// Parses `bytes START-END/TOTAL` (or `/*`). `None` for anything else, including the
/// status query `bytes */TOTAL`.
pub fn parse_content_range(v: &str) -> Option<Range> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let (a, b) = span.trim().split_once('-')?;
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.len() <= 15 && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (start, end) = (num(a)?, num(b)?);
    let total = match total.trim() {
        "*" => None,
        t => Some(num(t)?),
    };
    if end < start || total.is_some_and(|t| end >= t) {
        return None;
    }
    Some(Range { start, end, total })
}

/// What a chunk means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Kept; the file is not whole yet.
    Partial {
        /// Bytes held for the session so far.
        have: u64,
    },
    /// The file is whole: all its bytes, in order.
    Complete(Vec<u8>),
    /// Cannot be kept or judged: why.
    Untrackable(String),
}

struct Session {
    total: Option<u64>,
    parts: BTreeMap<u64, Vec<u8>>,
    held: u64,
    touched: Instant,
}

/// Upload sessions being put together.
pub struct Fragments {
    sessions: Mutex<HashMap<String, Session>>,
    /// Largest file (the hook's `max_body_bytes`).
    max_file: u64,
    /// Bytes held across all sessions.
    max_held: u64,
    /// Sessions at once.
    max_sessions: usize,
    /// A session without a chunk for this long is dropped.
    idle: Duration,
}

impl Fragments {
    /// A store with its limits.
    pub fn new(max_file: u64, max_held: u64, max_sessions: usize, idle: Duration) -> Fragments {
        Fragments {
            sessions: Mutex::new(HashMap::new()),
            max_file,
            max_held,
            max_sessions,
            idle,
        }
    }

    /// Adds the chunk `bytes` at `r` to the session `key` (the upload URL).
    pub fn add(&self, key: &str, r: Range, bytes: &[u8]) -> Outcome {
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let idle = self.idle;
        map.retain(|_, s| now.duration_since(s.touched) < idle);
        if r.end - r.start + 1 != bytes.len() as u64 {
            return Outcome::Untrackable(format!(
                "Content-Range says {} bytes, the body has {}",
                r.end - r.start + 1,
                bytes.len()
            ));
        }
        if r.total.unwrap_or(r.end + 1) > self.max_file || r.end >= self.max_file {
            map.remove(key);
            return Outcome::Untrackable(format!(
                "a file of more than {} bytes (max_body_bytes) sent in chunks",
                self.max_file
            ));
        }
        let held_all: u64 = map.values().map(|s| s.held).sum();
        if held_all + bytes.len() as u64 > self.max_held {
            return Outcome::Untrackable("too many chunked uploads at once".into());
        }
        if !map.contains_key(key) && map.len() >= self.max_sessions {
            return Outcome::Untrackable("too many chunked uploads at once".into());
        }
        let s = map.entry(key.to_string()).or_insert_with(|| Session {
            total: r.total,
            parts: BTreeMap::new(),
            held: 0,
            touched: now,
        });
        if s.total.is_some() && r.total.is_some() && s.total != r.total {
            map.remove(key);
            return Outcome::Untrackable("chunks of one upload disagree on its size".into());
        }
        s.total = s.total.or(r.total);
        s.touched = now;
        // A chunk sent again (a retry) replaces the one before at the same offset.
        if let Some(old) = s.parts.insert(r.start, bytes.to_vec()) {
            s.held -= old.len() as u64;
        }
        s.held += bytes.len() as u64;
        let Some(total) = s.total else {
            return Outcome::Partial { have: s.held };
        };
        // Whole when the chunks cover 0..total without a gap.
        let mut next = 0u64;
        for (start, b) in &s.parts {
            if *start > next {
                return Outcome::Partial { have: s.held };
            }
            next = next.max(start + b.len() as u64);
        }
        if next < total {
            return Outcome::Partial { have: s.held };
        }
        let s = map.remove(key).expect("present");
        let mut whole = vec![0u8; total as usize];
        for (start, b) in s.parts {
            let start = start as usize;
            let end = (start + b.len()).min(whole.len());
            whole[start..end].copy_from_slice(&b[..end - start]);
        }
        Outcome::Complete(whole)
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.sessions.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// No session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse() {
        assert_eq!(
            parse_content_range("bytes 0-99/1000"),
            Some(Range {
                start: 0,
                end: 99,
                total: Some(1000)
            })
        );
        assert_eq!(parse_content_range("bytes 5-9/*").unwrap().total, None);
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("bytes 9-5/100"), None);
        assert_eq!(parse_content_range("bytes 0-100/100"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_content_range("bytes 0-99999999999999999999/1"), None);
    }

    #[test]
    fn chunks_in_any_order_make_the_file() {
        let f = Fragments::new(1000, 10_000, 4, Duration::from_secs(60));
        let data: Vec<u8> = (0..250u32).map(|i| i as u8).collect();
        let r = |a: u64, b: u64| Range {
            start: a,
            end: b,
            total: Some(250),
        };
        assert_eq!(
            f.add("u1", r(100, 199), &data[100..200]),
            Outcome::Partial { have: 100 }
        );
        assert!(matches!(
            f.add("u1", r(0, 99), &data[..100]),
            Outcome::Partial { .. }
        ));
        assert_eq!(
            f.add("u1", r(200, 249), &data[200..]),
            Outcome::Complete(data)
        );
        assert!(f.is_empty());
    }

    #[test]
    fn what_cannot_be_kept_is_untrackable() {
        let f = Fragments::new(1000, 150, 1, Duration::from_secs(60));
        let r = |a: u64, b: u64, t: u64| Range {
            start: a,
            end: b,
            total: Some(t),
        };
        assert!(matches!(
            f.add("big", r(0, 9, 5000), &[0; 10]),
            Outcome::Untrackable(_)
        ));
        assert!(matches!(
            f.add("a", r(0, 9, 500), &[0; 5]),
            Outcome::Untrackable(_)
        ));
        assert!(matches!(
            f.add("a", r(0, 99, 500), &[0; 100]),
            Outcome::Partial { .. }
        ));
        assert!(
            matches!(f.add("b", r(0, 9, 500), &[0; 10]), Outcome::Untrackable(_)),
            "one session at a time"
        );
        assert!(
            matches!(
                f.add("a", r(100, 199, 500), &[0; 100]),
                Outcome::Untrackable(_)
            ),
            "memory cap"
        );
        assert!(
            matches!(f.add("a", r(0, 9, 600), &[0; 10]), Outcome::Untrackable(_)),
            "sizes disagree"
        );
    }
}
