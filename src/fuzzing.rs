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
    if name.ends_with(".eml") {
        // Action `bcc` on the same bytes: only the header block may change.
        let mut hide: Vec<String> = r
            .message
            .iter()
            .flat_map(|m| m.to.iter().chain(&m.cc))
            .map(|a| crate::policy::bare_address(a).to_lowercase())
            .take(2)
            .collect();
        hide.push("a@x.jp".into());
        let out = crate::pipeline::move_to_bcc(data, &hide);
        let body = &data[crate::pipeline::find_header_end(data)..];
        assert!(out.ends_with(body));
        // Action `link` on the same bytes: the headers stay, a file is taken out for each link.
        let settings = crate::policy::LinkSettings {
            url: Some("https://dl.example.co.jp".into()),
            ..crate::policy::LinkSettings::default()
        };
        if let Ok(Some(p)) = crate::workflow::links::prepare(data, &settings, 0, 540) {
            assert!(!p.files.is_empty());
            assert!(p.message.starts_with(&data[..p.body_offset]));
        }
    }
}

/// Walks `data` as the `PowerPoint Document` stream of a `.ppt` (the record walker alone; the
/// compound file around it is the cfb crate's and is reached by the `ooxml` target's seeds).
pub fn ppt_stream(data: &[u8]) {
    let t = crate::extract::ppt_stream_text(data, 1 << 16);
    assert!(t.len() <= 1 << 16);
}

/// Scans `data` as text.
pub fn scan(data: &[u8]) {
    let mut s = Scanner::new(engine());
    let r = s.scan(data);
    for f in r.findings {
        assert!(f.start < f.end && f.end <= data.len());
    }
}

/// Parses `data` as a rules file and builds an engine from it (with the built-ins); a built
/// engine scans a short text.
pub fn rules(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(e) = Engine::builder().rules_str(text).build() {
        let mut s = Scanner::new(Arc::new(e));
        let _ = s.scan_str("カード番号 4111 1111 1111 1111 社外秘 test@example.com");
    }
}

/// Parses `data` as a policy file; a parsed policy is checked against the engine and
/// evaluated on small facts. The first two lines are also compared as look-alike domains.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Look-alike domains (Punycode decoding is ours): the first two lines as a recipient domain
    // and a protected one.
    let mut lines = text.lines();
    let (a, b) = (
        lines.next().unwrap_or(""),
        lines.next().unwrap_or("example.co.jp"),
    );
    let _ = crate::policy::lookalike::looks_like(a, b);
    let _ = crate::policy::lookalike::punycode_decode(a.strip_prefix("xn--").unwrap_or(a));
    if let Ok(p) = crate::policy::parse_policy(text, None) {
        let _ = p.check_detectors(&engine());
        let f = crate::policy::Facts {
            sender: "a@example.co.jp".into(),
            recipients: vec![
                "b@partner.example".into(),
                "c@xn--xample-2of.co.jp".into(),
                format!("d@{a}"),
            ],
            roles: vec![crate::policy::Role::To, crate::policy::Role::Bcc],
            header_from: Some("boss@example.co.jp".into()),
            destination_host: Some("files.example.net".into()),
            ..Default::default()
        };
        let _ = p.evaluate(&f, &crate::policy::NoHistory);
    }
}

/// Loads `data` as the body of a saved engine (past the checksum, which a fuzzer cannot forge,
/// and as whole image bytes); an engine that loads scans a short text.
pub fn engine_image(data: &[u8]) {
    let _ = Engine::from_bytes(data);
    if let Ok(e) = Engine::from_body(data) {
        let mut s = Scanner::new(Arc::new(e));
        let _ = s.scan_str("カード番号 4111 1111 1111 1111 社外秘 Project Falcon EMP-123456");
    }
}

/// What [`crate::extract::xml`]'s walk hands out for `xml`, as text, through its own tokenizer
/// (`fast`) or quick-xml, and whether it ended without an error: the `xml` fuzz target and the
/// unit tests compare the two.
pub fn xml_trace(xml: &str, fast: bool) -> (Vec<String>, bool) {
    use crate::extract::xml::{skim, walk_quick_xml, Node};
    let mut out = Vec::new();
    let mut f = |n: Node<'_, '_>| {
        out.push(match n {
            Node::Start { name, e } => {
                let attrs: Vec<String> = e
                    .attributes()
                    .with_checks(false)
                    .map(|a| match a {
                        Ok(a) => {
                            let k = a.key.local_name();
                            let k: &str = k.as_ref();
                            let v = a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok();
                            format!("{k:?}={v:?}")
                        }
                        Err(e) => format!("error {e}"),
                    })
                    .collect();
                format!("<{name:?} {}>", attrs.join(" "))
            }
            Node::End { name } => format!("</{name:?}>"),
            Node::Text(t) => format!("{t:?}"),
        })
    };
    let ok = if fast {
        skim(xml, |t| crate::extract::xml::emit(t, &mut f)).is_ok()
    } else {
        walk_quick_xml(xml, &mut f).is_ok()
    };
    // quick-xml hands text out in pieces around references; so does `skim`. Adjacent text is
    // joined so that the comparison is of what the callers see.
    let mut joined: Vec<String> = Vec::new();
    for e in out {
        if e.starts_with('"') && joined.last().is_some_and(|l| l.starts_with('"')) {
            let last = joined.pop().unwrap_or_default();
            joined.push(format!("{}{}", &last[..last.len() - 1], &e[1..]));
        } else {
            joined.push(e);
        }
    }
    (joined, ok)
}

/// The `table` fuzz target: any bytes as `list.csv` (the cell splitter, header finding and
/// table-aware scoring), and on a quote-free text the `memchr` split gives csv-core's cells.
pub fn table(data: &[u8]) {
    inspect("list.csv", data);
    // The same bytes as a text file: tab- and comma-separated tables between its lines.
    inspect("notes.txt", data);
    let text = String::from_utf8_lossy(data);
    if let Some((fast, core)) = crate::extract::csv_grid_both(&text, 1 << 16) {
        assert_eq!(fast, core, "the two CSV splits differ on {text:?}");
    }
    // The cells of a plain text: on character boundaries, in order, rows increasing.
    let cells = crate::extract::plain_text_grid(&text, 1 << 16);
    let mut last = (0u32, 0usize);
    for c in &cells {
        assert!(
            c.start < c.end && text.get(c.start..c.end).is_some(),
            "{c:?} in {text:?}"
        );
        assert!((c.row, c.start) >= last, "{c:?} after {last:?} in {text:?}");
        last = (c.row, c.end);
    }
}

/// Attributes as `(key, value)` pairs, in order.
pub type Attrs = Vec<(String, String)>;

/// Every start tag of `xml` (as quick-xml reads them, until its first error) whose attributes
/// [`crate::extract::xml::plain_attrs`] takes: the keys and values it hands out, and quick-xml's
/// (attribute iterator with checks off, normalized values). The `xml` fuzz target and the unit
/// tests compare the two.
pub fn xml_attr_pairs(xml: &str) -> Vec<(Attrs, Attrs)> {
    use quick_xml::events::Event;
    let mut out = Vec::new();
    let mut r = quick_xml::Reader::from_str(xml);
    while let Ok(ev) = r.read_event() {
        let e = match ev {
            Event::Start(e) | Event::Empty(e) => e,
            Event::Eof => break,
            _ => continue,
        };
        let mut plain = Vec::new();
        if !crate::extract::xml::plain_attrs(e.attributes_raw(), |k, v| {
            plain.push((k.to_string(), v.to_string()));
            true
        }) {
            continue;
        }
        let quick = e
            .attributes()
            .with_checks(false)
            .map(|a| match a {
                Ok(a) => (
                    a.key.into_inner().to_string(),
                    match a.normalized_value(quick_xml::XmlVersion::Implicit1_0) {
                        Ok(v) => v.into_owned(),
                        Err(e) => format!("error {e}"),
                    },
                ),
                Err(e) => (String::new(), format!("error {e}")),
            })
            .collect();
        out.push((plain, quick));
    }
    out
}

/// Looks up attributes of every start tag of `xml` (as quick-xml reads them, until its first
/// error) by [`crate::extract::xml::attrs_ref`] (a check for the names' keys first, then the
/// plain reading or quick-xml) and by quick-xml alone, and panics when the two differ. The
/// names asked for, one at a time: `value`, `a`, each attribute's local name and its last
/// character; and `value` with the first attribute's name as a pair. Only the first 8 start
/// tags and 8 names are looked at (the look-ups cost more than the rest of the `xml` target).
pub fn xml_attr_lookups(xml: &str) {
    use crate::extract::xml::{attrs_quick, attrs_ref};
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(xml);
    let mut tags = 0;
    while let Ok(ev) = r.read_event() {
        let e = match ev {
            Event::Start(e) | Event::Empty(e) => e,
            Event::Eof => break,
            _ => continue,
        };
        tags += 1;
        if tags > 8 {
            break;
        }
        let mut names: Vec<String> = vec!["value".into(), "a".into()];
        for a in e.attributes().with_checks(false).flatten() {
            let k = a.key.local_name().into_inner();
            names.push(k.to_string());
            if let Some((at, _)) = k.char_indices().next_back().filter(|&(at, _)| at > 0) {
                names.push(k[at..].to_string());
            }
        }
        names.retain(|n| !n.is_empty());
        names.truncate(8);
        for (i, a) in names.iter().enumerate() {
            let a = a.as_str();
            assert_eq!(
                attrs_ref(&e, [a]),
                attrs_quick(&e, [a]),
                "attribute {a:?} read two ways differs on {xml:?}"
            );
            if i > 0 {
                continue;
            }
            // "value" with the tag's first attribute's name (or "a").
            let b = names.get(2).unwrap_or(&names[1]).as_str();
            assert_eq!(
                attrs_ref(&e, [a, b]),
                attrs_quick(&e, [a, b]),
                "attributes {a:?}, {b:?} read two ways differ on {xml:?}"
            );
        }
    }
}

/// The `xml` fuzz target: for any text that the walk's own tokenizer takes, it gives what
/// quick-xml gives; on any start tag whose attributes the plain reading takes, it reads what
/// quick-xml reads.
pub fn xml(data: &[u8]) {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    for (plain, quick) in xml_attr_pairs(xml) {
        assert_eq!(plain, quick, "the two attribute readings differ on {xml:?}");
    }
    xml_attr_lookups(xml);
    let fast = crate::extract::xml::plain_tree(xml);
    let (a, a_ok) = xml_trace(xml, false);
    if fast {
        let (b, b_ok) = xml_trace(xml, true);
        assert_eq!(
            (&a, a_ok),
            (&b, b_ok),
            "the two XML walks differ on {xml:?}"
        );
    }
}
