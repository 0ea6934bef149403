//! A small event walker over quick-xml for the OOXML and ODF parts: local names, resolved
//! entities, bounded nesting, never a panic on malformed XML (errors end the walk; the text seen
//! until then is kept).
//!
//! Most parts (a worksheet, shared strings, a document body) are plain element trees: tags,
//! attributes, text and references, nothing else. For those, [`walk`] runs its own tokenizer
//! ([`skim`]), which gives the very same events and errors as quick-xml in one pass at a few
//! times its speed (quick-xml's general machinery was a third of reading a 10,000-row sheet).
//! Whether a part is such a tree is told before anything is handed out, by a scan for what the
//! tokenizer leaves to quick-xml ([`plain_tree`]): a comment, CDATA, a processing instruction
//! or DOCTYPE, a byte order mark, a reference that is not `&name;` or `&#...;`. Those parts are
//! read by quick-xml as before. The `xml` fuzz target checks that both give the same events, and
//! fail at the same place, on any input that [`plain_tree`] lets through.

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
    if plain_tree(xml) {
        skim(xml, |t| emit(t, &mut f))
    } else {
        walk_quick_xml(xml, f)
    }
}

/// [`walk`] through quick-xml alone.
pub(crate) fn walk_quick_xml(xml: &str, mut f: impl FnMut(Node<'_, '_>)) -> Result<(), String> {
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

/// What [`skim`] finds: a start tag (`content` is what quick-xml calls the element's content:
/// the name and attributes without `<`, `>` and an empty element's `/`), an end tag's name, a
/// run of text without references, or a reference's name (`amp`, `#x41`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok<'x> {
    Start {
        content: &'x str,
        name_len: usize,
        /// Where the local name starts in `content` (after the prefix's `:`, if any).
        local: usize,
        empty: bool,
    },
    /// An end tag's local name.
    End(&'x str),
    Text(&'x str),
    Ref(&'x str),
}

/// Hands a token to a [`walk`] callback as quick-xml's events would have come.
pub(crate) fn emit(t: Tok<'_>, f: &mut impl FnMut(Node<'_, '_>)) {
    match t {
        Tok::Start {
            content,
            name_len,
            local,
            empty,
        } => {
            let e = BytesStart::from_content(content, name_len);
            let name = &content[local..name_len];
            f(Node::Start { name, e: &e });
            if empty {
                f(Node::End { name });
            }
        }
        Tok::End(name) => f(Node::End { name }),
        Tok::Text(t) => {
            if memchr::memchr(b'\r', t.as_bytes()).is_none() {
                f(Node::Text(t));
            } else {
                // Line ends normalised as quick-xml normalises them.
                let s = quick_xml::events::BytesText::from_escaped(t)
                    .xml_content(quick_xml::XmlVersion::Implicit1_0);
                f(Node::Text(&s));
            }
        }
        Tok::Ref(r) => {
            if let Some(s) = resolve_entity(r) {
                f(Node::Text(&s));
            }
        }
    }
}

/// The local part of a qualified name: what follows its first `:` (quick-xml's
/// `QName::local_name`, which searches with `str::find`; element and attribute names are a few
/// bytes, and a plain loop over them cost a tenth of what that search did on a spreadsheet).
#[inline]
pub(crate) fn local_name(qname: &str) -> &str {
    match qname.bytes().position(|b| b == b':') {
        Some(i) => &qname[i + 1..],
        None => qname,
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// The leading XML declaration's length, if the part starts with one.
fn declaration(b: &[u8]) -> Option<usize> {
    if b.starts_with(b"<?xml") && b.get(5).is_some_and(|&c| is_ws(c) || c == b'?') {
        memchr::memmem::find(&b[5..], b"?>").map(|p| 5 + p + 2)
    } else {
        None
    }
}

/// True when [`skim`] reads `xml` as quick-xml does (see the module docs): nothing but an XML
/// declaration at the start, elements, text and well-formed references. A few SIMD scans.
pub(crate) fn plain_tree(xml: &str) -> bool {
    let b = xml.as_bytes();
    if xml.starts_with('\u{feff}') {
        return false;
    }
    let body = &b[declaration(b).unwrap_or(0)..];
    if memchr::memmem::find(body, b"<!").is_some() || memchr::memmem::find(body, b"<?").is_some() {
        return false;
    }
    memchr::memchr_iter(b'&', body).all(|amp| {
        let name = body[amp + 1..]
            .iter()
            .take(65)
            .position(|&c| c == b';')
            .map(|q| &body[amp + 1..amp + 1 + q]);
        name.is_some_and(|n| {
            !n.is_empty() && n.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'#')
        })
    })
}

/// The tokenizer behind [`walk`] for the parts that [`plain_tree`] accepts: hands `sink` every
/// token in order, as quick-xml reads them (its element and end-tag rules, reference splitting,
/// errors for an unclosed tag, an end tag that does not match, a reference without `;`, nesting
/// past [`MAX_XML_DEPTH`], which end the walk with what came before handed out). Never panics;
/// linear time; memory is the open elements, at most [`MAX_XML_DEPTH`].
pub(crate) fn skim<'x>(xml: &'x str, mut sink: impl FnMut(Tok<'x>)) -> Result<(), String> {
    let b = xml.as_bytes();
    let n = b.len();
    let err = |at: usize, what: &str| Err(format!("malformed XML at byte {at}: {what}"));
    let mut i = declaration(b).unwrap_or(0);
    // A part without references (most are) needs no search for them in each text run.
    let any_amp = memchr::memchr(b'&', &b[i..]).is_some();
    let mut open: Vec<Open> = Vec::new();
    while i < n {
        if b[i] != b'<' {
            let end = memchr::memchr(b'<', &b[i..]).map_or(n, |p| i + p);
            // Text, split at references as quick-xml splits it.
            let mut at = i;
            while let Some(p) = any_amp.then(|| memchr::memchr(b'&', &b[at..end])).flatten() {
                let amp = at + p;
                if amp > at {
                    sink(Tok::Text(&xml[at..amp]));
                }
                let Some(q) = memchr::memchr(b';', &b[amp + 1..end]) else {
                    return err(amp, "reference without `;`");
                };
                let semi = amp + 1 + q;
                sink(Tok::Ref(&xml[amp + 1..semi]));
                at = semi + 1;
            }
            if end > at {
                sink(Tok::Text(&xml[at..end]));
            }
            i = end;
            continue;
        }
        if b.get(i + 1) == Some(&b'/') {
            // Most often the open element's name and `>`, compared where they are.
            if let Some(&Open {
                start: s,
                end: e,
                local: l,
                quoted: false,
            }) = open.last()
            {
                let at = i + 2 + (e - s);
                if b.get(at) == Some(&b'>') && same_name(&xml[s..e], &xml[i + 2..at]) {
                    open.pop();
                    sink(Tok::End(&xml[i + 2 + (l - s)..at]));
                    i = at + 1;
                    continue;
                }
            }
            // Its `>` is, as a start tag's, the first one outside quotes.
            let Some(close) = tag_close(b, i + 2) else {
                return err(i, "end tag not closed");
            };
            // White space after the name is dropped; an end tag of white space alone keeps it
            // as its name (and so matches no element), as quick-xml reads it.
            let mut name_end = close;
            while name_end > i + 2 && is_ws(b[name_end - 1]) {
                name_end -= 1;
            }
            if name_end == i + 2 {
                name_end = close;
            }
            let name = &xml[i + 2..name_end];
            match open.pop() {
                Some(o) if same_name(&xml[o.start..o.end], name) => {}
                Some(_) => return err(i, "end tag does not match the open element"),
                None => return err(i, "end tag without an open element"),
            }
            sink(Tok::End(local_name(name)));
            i = close + 1;
            continue;
        }
        // A start or empty element: its `>` is the first one outside quotes.
        let Some(close) = tag_close(b, i + 1) else {
            return err(i, "tag not closed");
        };
        let empty = close > i + 1 && b[close - 1] == b'/';
        let content_end = if empty { close - 1 } else { close };
        let content = &xml[i + 1..content_end];
        // The name ends at white space; its local part follows the first `:` in it.
        let (mut name_len, mut local, mut quoted) = (content.len(), 0, false);
        for (k, &c) in content.as_bytes().iter().enumerate() {
            if is_ws(c) {
                name_len = k;
                break;
            }
            if c == b':' && local == 0 {
                local = k + 1;
            }
            quoted |= c == b'"' || c == b'\'';
        }
        if !empty {
            if open.len() >= MAX_XML_DEPTH {
                return Err(format!("XML nested deeper than {MAX_XML_DEPTH}"));
            }
            open.push(Open {
                start: i + 1,
                end: i + 1 + name_len,
                local: i + 1 + local,
                quoted,
            });
        }
        sink(Tok::Start {
            content,
            name_len,
            local,
            empty,
        });
        i = close + 1;
    }
    Ok(())
}

/// An element [`skim`] has open: where its name is in the part, where its local name starts,
/// and whether the name has a quote in it (an end tag ends at its first `>` outside quotes, so
/// only a name without one, followed by `>`, is sure to be the whole end tag).
#[derive(Clone, Copy)]
struct Open {
    start: usize,
    end: usize,
    local: usize,
    quoted: bool,
}

/// Where the tag whose content (after `<` or `</`) begins at `from` ends: the first `>` outside
/// quoted attribute values. The `>` found first is the one unless a quote before it is left open: with
/// only `"` or only `'` quotes before it, that is their count being odd (they alternate open and
/// close), which a count tells without a branch per byte; a tag mixing both kinds is walked
/// quote by quote. After a `>` inside a value the search goes on from there, so every byte is
/// looked at a bounded number of times.
#[inline]
fn tag_close(b: &[u8], from: usize) -> Option<usize> {
    let mut k = from;
    let mut quote = 0u8;
    loop {
        let gt = k + memchr::memchr(b'>', b.get(k..)?)?;
        let span = &b[k..gt];
        if quote == 0 {
            let (dq, sq) = span.iter().fold((0u32, 0u32), |(d, s), &c| {
                (d + u32::from(c == b'"'), s + u32::from(c == b'\''))
            });
            if (sq == 0 && dq % 2 == 0) || (dq == 0 && sq % 2 == 0) {
                return Some(gt);
            }
        }
        for &c in span {
            if quote == 0 {
                if c == b'"' || c == b'\'' {
                    quote = c;
                }
            } else if c == quote {
                quote = 0;
            }
        }
        if quote == 0 {
            return Some(gt);
        }
        k = gt + 1;
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
    let [v] = attrs_ref(e, [name]);
    v
}

/// The values of the attributes with local names `names`, read in one pass over the element's
/// attributes (a worksheet cell asks for two or three; asking one at a time reads them all again
/// for each). The first attribute of each name counts.
pub(crate) fn attrs_ref<'e, const N: usize>(
    e: &'e BytesStart<'_>,
    names: [&str; N],
) -> [Option<Cow<'e, str>>; N] {
    let mut out = [const { None }; N];
    if !may_have_attr(e.attributes_raw(), &names) {
        return out;
    }
    let mut left = N;
    // Most tags are plain (`c r="B2" t="s"`): read here without quick-xml's attribute machinery
    // (a sixth of reading a worksheet). Anything else is read by quick-xml from the start.
    let plain = plain_attrs(e.attributes_raw(), |key, value| {
        let key = local_name(key);
        if let Some(i) = names.iter().position(|n| same_name(n, key)) {
            if out[i].is_none() {
                out[i] = Some(Cow::Borrowed(value));
                left -= 1;
            }
        }
        left > 0
    });
    if plain {
        return out;
    }
    attrs_quick(e, names)
}

/// [`attrs_ref`] by quick-xml's attribute iterator alone (checks off, normalized values).
pub(crate) fn attrs_quick<'e, const N: usize>(
    e: &'e BytesStart<'_>,
    names: [&str; N],
) -> [Option<Cow<'e, str>>; N] {
    let mut out = [const { None }; N];
    let mut left = N;
    for a in e.attributes().with_checks(false).flatten() {
        let key = local_name(a.key.into_inner());
        if let Some(i) = names.iter().position(|n| same_name(n, key)) {
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

/// False when no attribute of a start tag's attribute text `raw` can have one of `names` as its
/// local name; true when one may (then the attributes are read). An attribute that quick-xml
/// reads has a key followed by optional white space and `=`, and a local name is the end of its
/// key: so each `=` is looked back from, past white space, for a key ending in one of `names`.
/// An OpenDocument cell (`office:value-type="string" calcext:value-type="string"`) has neither
/// of the two attributes asked for; reading all its attributes was a tenth of reading a list.
fn may_have_attr(raw: &str, names: &[&str]) -> bool {
    let b = raw.as_bytes();
    memchr::memchr_iter(b'=', b).any(|eq| {
        let mut k = eq;
        while k > 0 && is_ws(b[k - 1]) {
            k -= 1;
        }
        names.iter().any(|n| {
            let n = n.as_bytes();
            k >= n.len() && same_bytes(&b[k - n.len()..k], n)
        })
    })
}

/// `a == b` for the names of attributes, a few bytes each: compared here, where `==` of two
/// strings whose lengths are not constants called `memcmp` for each (4 % of reading a
/// worksheet's cells).
#[inline]
fn same_name(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

/// [`same_name`] of bytes.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut k = 0;
    while k < a.len() {
        if a[k] != b[k] {
            return false;
        }
        k += 1;
    }
    true
}

/// Hands `f` each attribute `(key, value)` of a start tag's attribute text (what follows the
/// name) while `f` returns true, when that text is plain: attributes `key="value"` or
/// `key='value'` (no space around `=`), separated by XML white space, keys without quotes,
/// `=`, `<`, `>` or `&`, values of printable ASCII without `&` (so that quick-xml's normalized
/// value is the text itself). Returns false as soon as something else comes (then nothing that
/// was handed out may be used): the caller reads the tag with quick-xml instead. On plain text,
/// quick-xml's attribute iterator (checks off) yields the very same keys and values in the same
/// order; the `xml` fuzz target checks that.
pub(crate) fn plain_attrs<'a>(raw: &'a str, mut f: impl FnMut(&'a str, &'a str) -> bool) -> bool {
    let b = raw.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && is_ws(b[i]) {
            i += 1;
        }
        if i == b.len() {
            return true;
        }
        let k0 = i;
        while i < b.len()
            && !matches!(
                b[i],
                b'=' | b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'\'' | b'<' | b'>' | b'&'
            )
        {
            i += 1;
        }
        if i == k0 || b.get(i) != Some(&b'=') {
            return false;
        }
        let q = match b.get(i + 1) {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => return false,
        };
        // The value up to its closing quote, each byte looked at once.
        let v0 = i + 2;
        let mut v1 = v0;
        loop {
            match b.get(v1) {
                Some(&c) if c == q => break,
                Some(&c) if (b' '..=b'~').contains(&c) && c != b'&' => v1 += 1,
                _ => return false,
            }
        }
        i = v1 + 1;
        // Keys end at ASCII bytes and values are ASCII: the slices are at char boundaries.
        if !f(&raw[k0..v0 - 2], &raw[v0..v1]) {
            return true;
        }
    }
}

/// Bytes of an XML part as text (UTF-8, UTF-16 with BOM).
pub(crate) fn xml_text(bytes: &[u8]) -> Cow<'_, str> {
    crate::text::decode_text(bytes).text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain attributes read as quick-xml reads them; anything else is left to quick-xml.
    #[test]
    fn plain_attributes_are_quick_xmls() {
        let cases = [
            r#"<c r="B2" s="1" t="s"/>"#,
            r#"<c r='B2'  t='inlineStr'
                 x:y="1"/>"#,
            r#"<c a="1"b="2" a="3"/>"#,
            r#"<c v="x<y>z" w='"' q="'"/>"#,
            "<c  \t\r\n/>",
            r#"<c a = "1"/>"#,
            r#"<c a="A&amp;B"/>"#,
            "<c a=\"1\t2\"/>",
            r#"<c a="名簿"/>"#,
            r#"<c a/>"#,
            r#"<c a=1/>"#,
            r#"<c a="1/>"#,
            r#"<c "a"="1"/>"#,
            r#"<c ="1"/>"#,
        ];
        let mut plain = 0;
        for xml in cases {
            for (ours, quick) in crate::fuzzing::xml_attr_pairs(xml) {
                assert_eq!(ours, quick, "{xml}");
                plain += 1;
            }
        }
        assert_eq!(
            plain, 5,
            "the first five are plain, the rest go to quick-xml"
        );
        let none = |raw: &str| !plain_attrs(raw, |_, _| true);
        for raw in [
            r#" a = "1""#,
            r#" a="&amp;""#,
            " a=\"\n\"",
            r#" a="名""#,
            " a",
            r#" a="1"#,
        ] {
            assert!(none(raw), "{raw:?} is not plain");
        }
        // Stopping early is a plain reading too.
        let mut seen = Vec::new();
        assert!(plain_attrs(r#" r="B2" t="s" junk"#, |k, v| {
            seen.push((k, v));
            seen.len() < 2
        }));
        assert_eq!(seen, [("r", "B2"), ("t", "s")]);
    }

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
    fn skim_gives_what_quick_xml_gives() {
        let plain = [
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\r\n<x:ws xmlns:x=\"u\"><x:c r=\"B3\" t='s'><v>1</v></x:c><c/><c r=\"a>b\" x='\"'/></x:ws>",
            "<a>A&amp;B &#x3042;&#12354;&lt;&gt;&quot;&apos;&nbsp;&#xD800;&#0;&#xFFFFFFFFFF;</a>",
            "<a>line\r\nnext\rthird</a>\n",
            "<si><t xml:space=\"preserve\"> 顧客 </t><rPh sb=\"0\"><t>コキャク</t></rPh></si>",
            "<a\n b = \"1\"\t></a >",
            "text only",
            "",
            // Malformed: the same events up to the same failure.
            "<a>",
            "<a",
            "x<",
            "<>",
            "< a>x</ a>",
            "<a/ >",
            "</a>",
            "<a></b>",
            "<a>]]></a>",
            "<a b='>'>q</a>",
            "<a>\u{feff}</a>",
            "<a\u{feff}/>",
            "<名前 属性=\"値\">x</名前>",
            "<a>x</a>trail<b></b>",
            "<a>x</a",
            "<//>",
            "<a>x</a><a b=\"1",
            // The first `>` inside quotes, quotes of both kinds, a quote left open.
            "<a b=\"it's\" c='say \"hi\"' d=\">\">x</a>",
            "<a b='>' c=\"'>'\" d='\">'>x</a>",
            "<a b=\"x>y>z\" c='1'/>",
            "<a b='it\"s>'>x</a><a b=\"'>",
            // Names with `:` or quotes (and a quoted `>`) in them; end tags of the open name,
            // of another name, with attributes.
            "<a\"b>c\"d>x</a\"b>c\"d>",
            "<a\"b>c\"d>x</a\"b>",
            "<a'b>x</a'b>y'>z</a'b>",
            "<a>x</a b=\">\"><c>y</c b='>' >",
            "<:a>x</:a><a:>y</a:><p:q:r>z</p:q:r ><p:q>w</p:r>",
            "<x:a><y:a>t</x:a></y:a>",
        ];
        for xml in plain {
            assert!(plain_tree(xml), "{xml:?}");
            let (fast, fast_ok) = crate::fuzzing::xml_trace(xml, true);
            let (slow, slow_ok) = crate::fuzzing::xml_trace(xml, false);
            assert_eq!((&fast, fast_ok), (&slow, slow_ok), "{xml:?}");
        }
        // Left to quick-xml.
        for xml in [
            "<a><!-- c --></a>",
            "<a><![CDATA[<z>]]></a>",
            "<!DOCTYPE a><a/>",
            "<a><?pi x?></a>",
            "<a>x & y</a>",
            "<a>&amp</a>",
            "<a>&;</a>",
            "<a>&a b;</a>",
            "\u{feff}<a/>",
        ] {
            assert!(!plain_tree(xml), "{xml:?}");
        }
        let deep = "<a>".repeat(MAX_XML_DEPTH + 1) + &"</a>".repeat(MAX_XML_DEPTH + 1);
        assert!(plain_tree(&deep));
        assert!(walk(&deep, |_| {}).is_err() && walk_quick_xml(&deep, |_| {}).is_err());
        let ok = "<a>".repeat(MAX_XML_DEPTH) + &"</a>".repeat(MAX_XML_DEPTH);
        assert!(walk(&ok, |_| {}).is_ok());
    }

    /// `tag_close` (counts, then quote by quote) against the plain walk of one quote state.
    #[test]
    fn tag_close_is_the_first_gt_outside_quotes() {
        fn reference(b: &[u8], from: usize) -> Option<usize> {
            let mut quote = 0u8;
            for (k, &c) in b.iter().enumerate().skip(from) {
                if quote == 0 {
                    if c == b'>' {
                        return Some(k);
                    }
                    if c == b'"' || c == b'\'' {
                        quote = c;
                    }
                } else if c == quote {
                    quote = 0;
                }
            }
            None
        }
        let alphabet = b"ab =\"'>";
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in 0..14 {
            for _ in 0..3000 {
                let b: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        alphabet[(x % alphabet.len() as u64) as usize]
                    })
                    .collect();
                for from in 0..=len {
                    assert_eq!(tag_close(&b, from), reference(&b, from), "{b:?} {from}");
                }
            }
        }
    }

    #[test]
    fn tags_without_the_names_are_not_read() {
        let names = ["value", "number-columns-repeated"];
        let cell = r#" office:value-type="string" calcext:value-type="string""#;
        assert!(!may_have_attr(cell, &names));
        assert!(!may_have_attr("", &names));
        assert!(!may_have_attr(r#" value"x"="1" values="2""#, &names));
        for maybe in [
            r#" office:value="3""#,
            " value = '3'",
            " value\n=\t'3'",
            r#" a="value=1""#,
            r#" xvalue="1""#,
            r#" table:number-columns-repeated="4""#,
        ] {
            assert!(may_have_attr(maybe, &names), "{maybe:?}");
        }
        // Whatever the check says, the values read are quick-xml's.
        for xml in [
            r#"<c office:value-type="string" calcext:value-type="string"/>"#,
            r#"<c office:value-type="float" office:value="12" table:number-columns-repeated="3"/>"#,
            r#"<c value = '3' a="value=1"/>"#,
            r#"<c xvalue="1" value"x"="2"/>"#,
        ] {
            let mut r = Reader::from_str(xml);
            let Ok(Event::Empty(e)) = r.read_event() else {
                panic!("{xml}")
            };
            assert_eq!(attrs_ref(&e, names), attrs_quick(&e, names), "{xml}");
            crate::fuzzing::xml_attr_lookups(xml);
        }
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
