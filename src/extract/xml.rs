//! A small event walker over quick-xml for the OOXML and ODF parts: local names, resolved
//! entities, bounded nesting, never a panic on malformed XML (errors end the walk; the text seen
//! until then is kept).

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Deepest element nesting read (Tika's `maxXmlDepth`).
pub const MAX_XML_DEPTH: usize = 100;

pub(crate) enum Node<'e, 'x> {
    Start {
        name: &'e str,
        e: &'e BytesStart<'x>,
    },
    End {
        name: &'e str,
    },
    Text(&'e str),
}

/// Calls `f` for every element start, end and text run. Returns an error message when the XML
/// is malformed or nested deeper than [`MAX_XML_DEPTH`].
pub(crate) fn walk(xml: &str, mut f: impl FnMut(Node<'_, '_>)) -> Result<(), String> {
    let mut r = Reader::from_str(xml);
    let mut depth = 0usize;
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) => {
                depth += 1;
                if depth > MAX_XML_DEPTH {
                    return Err(format!("XML nested deeper than {MAX_XML_DEPTH}"));
                }
                let n = e.local_name();
                let name: &str = n.as_ref();
                f(Node::Start { name, e: &e });
            }
            Ok(Event::Empty(e)) => {
                let n = e.local_name();
                let name: &str = n.as_ref();
                f(Node::Start { name, e: &e });
                f(Node::End { name });
            }
            Ok(Event::End(e)) => {
                depth = depth.saturating_sub(1);
                let n = e.local_name();
                let name: &str = n.as_ref();
                f(Node::End { name });
            }
            Ok(Event::Text(t)) => {
                let s = t.xml_content(quick_xml::XmlVersion::Implicit1_0);
                f(Node::Text(&s));
            }
            Ok(Event::CData(t)) => {
                let s: &str = &t;
                f(Node::Text(s));
            }
            Ok(Event::GeneralRef(r)) => {
                if let Some(s) = resolve_entity(&r) {
                    f(Node::Text(&s));
                }
            }
            Ok(Event::Eof) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(format!("malformed XML at byte {}: {e}", r.error_position())),
        }
    }
}

/// `amp`, `lt`, `#x41`, `#65` → their text.
pub(crate) fn resolve_entity(name: &str) -> Option<Cow<'static, str>> {
    let s = match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        _ => {
            let code = if let Some(h) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X"))
            {
                u32::from_str_radix(h, 16).ok()?
            } else {
                name.strip_prefix('#')?.parse().ok()?
            };
            return char::from_u32(code).map(|c| Cow::Owned(c.to_string()));
        }
    };
    Some(Cow::Borrowed(s))
}

/// The value of the attribute with local name `name`.
pub(crate) fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    attr_ref(e, name).map(Cow::into_owned)
}

/// [`attr`] without a copy when the value holds no entity (a worksheet reads two attributes
/// per cell).
pub(crate) fn attr_ref<'e>(e: &'e BytesStart<'_>, name: &str) -> Option<Cow<'e, str>> {
    for a in e.attributes().with_checks(false).flatten() {
        let local = a.key.local_name();
        let key: &str = local.as_ref();
        if key == name {
            return a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok();
        }
    }
    None
}

/// The values of the attributes with local names `names`, read in one pass over the element's
/// attributes (a worksheet cell asks for two or three; asking one at a time reads them all again
/// for each). The first attribute of each name counts.
pub(crate) fn attrs_ref<'e, const N: usize>(
    e: &'e BytesStart<'_>,
    names: [&str; N],
) -> [Option<Cow<'e, str>>; N] {
    let mut out = [const { None }; N];
    let mut left = N;
    for a in e.attributes().with_checks(false).flatten() {
        let local = a.key.local_name();
        let key: &str = local.as_ref();
        if let Some(i) = names.iter().position(|n| *n == key) {
            if out[i].is_none() {
                out[i] = a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok();
                left -= 1;
                if left == 0 {
                    break;
                }
            }
        }
    }
    out
}

/// Bytes of an XML part as text (UTF-8, UTF-16 with BOM).
pub(crate) fn xml_text(bytes: &[u8]) -> Cow<'_, str> {
    crate::text::decode_text(bytes).text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_and_resolves() {
        let mut out = String::new();
        let r = walk(
            "<a x='1'><b>A&amp;B &#x3042;</b><c/><![CDATA[<z>]]></a>",
            |n| {
                if let Node::Text(t) = n {
                    out.push_str(t)
                }
            },
        );
        assert!(r.is_ok());
        assert_eq!(out, "A&B あ<z>");
        let deep = "<a>".repeat(200);
        assert!(walk(&deep, |_| {}).is_err());
        assert!(
            walk("<a><b></a>", |_| {}).is_err(),
            "mismatched end tags are malformed"
        );
    }

    #[test]
    fn attributes_in_one_pass_match_one_at_a_time() {
        let xml = r#"<x:c r="B3" s="1" x:t="s&amp;t" r="C9"/><c/><c t='n'/>"#;
        let mut n = 0;
        walk(xml, |node| {
            if let Node::Start { e, .. } = node {
                let [r, t, zz] = attrs_ref(e, ["r", "t", "zz"]);
                assert_eq!(r, attr_ref(e, "r"));
                assert_eq!(t, attr_ref(e, "t"));
                assert_eq!(zz, None);
                n += 1;
            }
        })
        .unwrap();
        assert_eq!(n, 3);
    }
}
