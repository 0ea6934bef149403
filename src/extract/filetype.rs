//! True file types from content, container-aware: a docx is a zip with `word/document.xml`, an
//! encrypted Office file is a CFB with `EncryptionInfo`, an `.eml` starts with header lines.

use std::io::Cursor;

/// A file's true type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[allow(missing_docs)]
pub enum FileKind {
    Docx,
    Xlsx,
    Pptx,
    Odt,
    Ods,
    Odp,
    Zip,
    Jar,
    Doc,
    Xls,
    Ppt,
    Msg,
    /// OOXML encrypted with a password (a CFB holding `EncryptionInfo` + `EncryptedPackage`).
    EncryptedOffice,
    /// Another compound file.
    Cfb,
    Pdf,
    Rtf,
    Html,
    Xml,
    Eml,
    Tnef,
    Text,
    Csv,
    Gzip,
    Bzip2,
    Xz,
    Tar,
    SevenZip,
    Rar,
    Png,
    Jpeg,
    Gif,
    Bmp,
    Tiff,
    Webp,
    Heic,
    Exe,
    Elf,
    MachO,
    Empty,
    #[default]
    Unknown,
}

impl FileKind {
    /// Short name: `docx`, `xlsx`, `zip`, `pdf`, `encrypted_office`, `png`, `exe`, ...
    pub fn short(self) -> &'static str {
        use FileKind::*;
        match self {
            Docx => "docx",
            Xlsx => "xlsx",
            Pptx => "pptx",
            Odt => "odt",
            Ods => "ods",
            Odp => "odp",
            Zip => "zip",
            Jar => "jar",
            Doc => "doc",
            Xls => "xls",
            Ppt => "ppt",
            Msg => "msg",
            EncryptedOffice => "encrypted_office",
            Cfb => "cfb",
            Pdf => "pdf",
            Rtf => "rtf",
            Html => "html",
            Xml => "xml",
            Eml => "eml",
            Tnef => "tnef",
            Text => "text",
            Csv => "csv",
            Gzip => "gzip",
            Bzip2 => "bzip2",
            Xz => "xz",
            Tar => "tar",
            SevenZip => "7z",
            Rar => "rar",
            Png => "png",
            Jpeg => "jpeg",
            Gif => "gif",
            Bmp => "bmp",
            Tiff => "tiff",
            Webp => "webp",
            Heic => "heic",
            Exe => "exe",
            Elf => "elf",
            MachO => "macho",
            Empty => "empty",
            Unknown => "unknown",
        }
    }

    /// MIME type.
    pub fn mime(self) -> &'static str {
        use FileKind::*;
        match self {
            Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Pptx => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            Odt => "application/vnd.oasis.opendocument.text",
            Ods => "application/vnd.oasis.opendocument.spreadsheet",
            Odp => "application/vnd.oasis.opendocument.presentation",
            Zip => "application/zip",
            Jar => "application/java-archive",
            Doc => "application/msword",
            Xls => "application/vnd.ms-excel",
            Ppt => "application/vnd.ms-powerpoint",
            Msg => "application/vnd.ms-outlook",
            EncryptedOffice => "application/x-encrypted-office",
            Cfb => "application/x-cfb",
            Pdf => "application/pdf",
            Rtf => "application/rtf",
            Html => "text/html",
            Xml => "application/xml",
            Eml => "message/rfc822",
            Tnef => "application/ms-tnef",
            Text => "text/plain",
            Csv => "text/csv",
            Gzip => "application/gzip",
            Bzip2 => "application/x-bzip2",
            Xz => "application/x-xz",
            Tar => "application/x-tar",
            SevenZip => "application/x-7z-compressed",
            Rar => "application/vnd.rar",
            Png => "image/png",
            Jpeg => "image/jpeg",
            Gif => "image/gif",
            Bmp => "image/bmp",
            Tiff => "image/tiff",
            Webp => "image/webp",
            Heic => "image/heic",
            Exe => "application/vnd.microsoft.portable-executable",
            Elf => "application/x-elf",
            MachO => "application/x-mach-binary",
            Empty => "application/x-empty",
            Unknown => "application/octet-stream",
        }
    }
}

/// The true type of `data`; `name` only breaks ties between text types (`.csv`).
pub fn sniff(data: &[u8], name: &str) -> FileKind {
    use FileKind::*;
    if data.is_empty() {
        return Empty;
    }
    let starts = |m: &[u8]| data.starts_with(m);
    if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") || starts(b"PK\x07\x08") {
        return zip_kind(data);
    }
    if starts(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        return cfb_kind(data);
    }
    if data[..data.len().min(1024)]
        .windows(5)
        .any(|w| w == b"%PDF-")
    {
        return Pdf;
    }
    if starts(b"{\\rtf") {
        return Rtf;
    }
    if starts(&[0x78, 0x9F, 0x3E, 0x22]) {
        return Tnef;
    }
    if starts(&[0x1F, 0x8B]) {
        return Gzip;
    }
    if starts(b"BZh") && data.len() > 3 && data[3].is_ascii_digit() {
        return Bzip2;
    }
    if starts(&[0xFD, b'7', b'z', b'X', b'Z', 0]) {
        return Xz;
    }
    if starts(&[b'7', b'z', 0xBC, 0xAF, 0x27, 0x1C]) {
        return SevenZip;
    }
    if starts(b"Rar!\x1A\x07") {
        return Rar;
    }
    if data.len() > 262 && &data[257..262] == b"ustar" {
        return Tar;
    }
    if starts(&[0x89, b'P', b'N', b'G']) {
        return Png;
    }
    if starts(&[0xFF, 0xD8, 0xFF]) {
        return Jpeg;
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return Gif;
    }
    if starts(b"BM")
        && data.len() > 14
        && u32::from_le_bytes([data[2], data[3], data[4], data[5]]) as usize >= 14
        && data[6..10] == [0, 0, 0, 0]
    {
        return Bmp;
    }
    if starts(b"II*\0") || starts(b"MM\0*") {
        return Tiff;
    }
    if starts(b"RIFF") && data.len() > 12 && &data[8..12] == b"WEBP" {
        return Webp;
    }
    if data.len() > 12
        && &data[4..8] == b"ftyp"
        && matches!(
            &data[8..12],
            b"heic" | b"heix" | b"mif1" | b"msf1" | b"avif"
        )
    {
        return Heic;
    }
    if starts(b"MZ") && data.len() > 64 {
        return Exe;
    }
    if starts(b"\x7FELF") {
        return Elf;
    }
    if starts(&[0xFE, 0xED, 0xFA, 0xCE])
        || starts(&[0xFE, 0xED, 0xFA, 0xCF])
        || starts(&[0xCF, 0xFA, 0xED, 0xFE])
        || starts(&[0xCE, 0xFA, 0xED, 0xFE])
    {
        return MachO;
    }
    text_kind(data, name)
}

fn ext(name: &str) -> String {
    name.rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default()
}

fn text_kind(data: &[u8], name: &str) -> FileKind {
    use FileKind::*;
    let head = &data[..data.len().min(8192)];
    // Binary: NUL bytes outside UTF-16 text.
    let utf16 = head.starts_with(&[0xFF, 0xFE])
        || head.starts_with(&[0xFE, 0xFF])
        || crate::text::utf16_without_bom(head).is_some();
    let controls = head
        .iter()
        .filter(|&&b| b < 0x09 || (0x0E..0x1B).contains(&b))
        .count();
    if !utf16 && (head.contains(&0) || controls * 50 > head.len()) {
        return Unknown;
    }
    let trimmed: Vec<u8> = head
        .iter()
        .skip_while(|b| b.is_ascii_whitespace() || **b == 0xEF || **b == 0xBB || **b == 0xBF)
        .take(512)
        .map(u8::to_ascii_lowercase)
        .collect();
    if trimmed.starts_with(b"<!doctype html")
        || trimmed.starts_with(b"<html")
        || (trimmed.starts_with(b"<") && find(&trimmed, b"<body").is_some())
    {
        return Html;
    }
    if looks_like_message(head) {
        return Eml;
    }
    match ext(name).as_str() {
        "csv" | "tsv" => Csv,
        "html" | "htm" => Html,
        "xml" if trimmed.starts_with(b"<?xml") => Xml,
        "eml" if looks_like_headers(head) => Eml,
        _ if trimmed.starts_with(b"<?xml") => Xml,
        _ => Text,
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    memchr::memmem::find(h, n)
}

/// Header lines at the top, at least two of them known message headers.
fn looks_like_message(head: &[u8]) -> bool {
    let mut known = 0;
    for line in head.split(|&b| b == b'\n').take(40) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return false;
        };
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-') {
            return false;
        }
        let n = name.to_ascii_lowercase();
        if matches!(
            n.as_slice(),
            b"from"
                | b"to"
                | b"subject"
                | b"date"
                | b"message-id"
                | b"mime-version"
                | b"received"
                | b"return-path"
                | b"content-type"
                | b"cc"
                | b"reply-to"
        ) {
            known += 1;
        }
    }
    known >= 2
}

fn looks_like_headers(head: &[u8]) -> bool {
    head.split(|&b| b == b'\n')
        .next()
        .is_some_and(|l| l.contains(&b':'))
}

fn zip_kind(data: &[u8]) -> FileKind {
    use FileKind::*;
    let Ok(z) = zip::ZipArchive::new(Cursor::new(data)) else {
        return Zip;
    };
    let has = |n: &str| z.index_for_name(n).is_some();
    if has("[Content_Types].xml") {
        if has("word/document.xml") {
            return Docx;
        }
        if has("xl/workbook.xml") {
            return Xlsx;
        }
        if has("ppt/presentation.xml") {
            return Pptx;
        }
        // Other layouts: look at the part names.
        for n in z.file_names_raw() {
            if n.starts_with(b"word/") {
                return Docx;
            }
            if n.starts_with(b"xl/") {
                return Xlsx;
            }
            if n.starts_with(b"ppt/") {
                return Pptx;
            }
        }
    }
    if has("mimetype") {
        let mut z = z;
        if let Ok(mut f) = z.by_name("mimetype") {
            let mut buf = Vec::new();
            use std::io::Read;
            let _ = (&mut f).take(100).read_to_end(&mut buf);
            let m = String::from_utf8_lossy(&buf);
            if m.contains("opendocument.text") {
                return Odt;
            }
            if m.contains("opendocument.spreadsheet") {
                return Ods;
            }
            if m.contains("opendocument.presentation") {
                return Odp;
            }
        }
        return Zip;
    }
    if has("META-INF/MANIFEST.MF") {
        return Jar;
    }
    Zip
}

fn cfb_kind(data: &[u8]) -> FileKind {
    use FileKind::*;
    let Ok(c) = cfb::CompoundFile::open(Cursor::new(data)) else {
        return Cfb;
    };
    if c.is_stream("/EncryptionInfo") && c.is_stream("/EncryptedPackage") {
        return EncryptedOffice;
    }
    if c.is_stream("/WordDocument") {
        return Doc;
    }
    if c.is_stream("/Workbook") || c.is_stream("/Book") {
        return Xls;
    }
    if c.is_stream("/PowerPoint Document") {
        return Ppt;
    }
    if c.read_root_storage()
        .any(|e| e.name().starts_with("__substg1.0_"))
    {
        return Msg;
    }
    Cfb
}

/// True when `name`'s extension names a type that `kind` is not (an `.xlsx` renamed `.jpg`).
/// Unknown extensions and unknown contents are not mismatches.
pub fn extension_mismatch(name: &str, kind: FileKind) -> bool {
    use FileKind::*;
    let e = ext(name);
    let expected: &[FileKind] = match e.as_str() {
        // A password-protected OOXML file is a CFB container (EncryptionInfo and
        // EncryptedPackage streams) behind its usual name: encrypted, not disguised.
        "docx" | "docm" | "dotx" => &[Docx, EncryptedOffice],
        "xlsx" | "xlsm" | "xltx" => &[Xlsx, EncryptedOffice],
        "pptx" | "pptm" | "potx" => &[Pptx, EncryptedOffice],
        "odt" => &[Odt],
        "ods" => &[Ods],
        "odp" => &[Odp],
        "zip" => &[Zip, Jar],
        "jar" => &[Jar, Zip],
        "doc" | "dot" => &[Doc, EncryptedOffice, Rtf],
        "xls" | "xlt" => &[Xls, EncryptedOffice, Html, Xml, Csv, Text],
        "ppt" | "pps" => &[Ppt, EncryptedOffice],
        "msg" => &[Msg, Cfb],
        "pdf" => &[Pdf],
        "rtf" => &[Rtf],
        "htm" | "html" => &[Html, Text, Xml],
        "xml" => &[Xml, Text, Html],
        "eml" => &[Eml, Text],
        "dat" if name.eq_ignore_ascii_case("winmail.dat") => &[Tnef],
        "txt" | "log" | "md" => &[Text, Csv, Html, Xml, Eml, Empty],
        "csv" | "tsv" => &[Csv, Text, Empty],
        "gz" | "tgz" => &[Gzip],
        "bz2" => &[Bzip2],
        "xz" => &[Xz],
        "tar" => &[Tar],
        "7z" => &[SevenZip],
        "rar" => &[Rar],
        "png" => &[Png],
        "jpg" | "jpeg" | "jpe" => &[Jpeg],
        "gif" => &[Gif],
        "bmp" => &[Bmp],
        "tif" | "tiff" => &[Tiff],
        "webp" => &[Webp],
        "heic" | "heif" | "avif" => &[Heic],
        "exe" | "dll" | "scr" | "sys" => &[Exe],
        _ => return false,
    };
    !matches!(kind, Unknown | Empty) && !expected.contains(&kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic() {
        assert_eq!(sniff(b"%PDF-1.7\n", "x.bin"), FileKind::Pdf);
        assert_eq!(sniff(&[0x89, b'P', b'N', b'G', 0, 0], "a"), FileKind::Png);
        assert_eq!(
            sniff(b"From: a@b.c\r\nTo: d@e.f\r\nSubject: x\r\n\r\nbody", "m"),
            FileKind::Eml
        );
        assert_eq!(
            sniff("氏名,電話\n山田,03-1234-5678\n".as_bytes(), "list.csv"),
            FileKind::Csv
        );
        assert_eq!(
            sniff(b"<!DOCTYPE html><html><body>x</body></html>", "a"),
            FileKind::Html
        );
        assert_eq!(sniff(b"", "a"), FileKind::Empty);
        assert_eq!(sniff(&[0u8, 1, 2, 3, 0, 0, 0], "a"), FileKind::Unknown);
    }

    #[test]
    fn mismatch() {
        assert!(extension_mismatch("photo.jpg", FileKind::Xlsx));
        assert!(!extension_mismatch("data.xlsx", FileKind::Xlsx));
        assert!(!extension_mismatch("noext", FileKind::Xlsx));
        assert!(!extension_mismatch("x.weird", FileKind::Pdf));
        // Password-protected Office files are CFB behind an OOXML name.
        assert!(!extension_mismatch(
            "見積書.docx",
            FileKind::EncryptedOffice
        ));
        assert!(!extension_mismatch("list.xlsx", FileKind::EncryptedOffice));
        assert!(extension_mismatch("photo.jpg", FileKind::EncryptedOffice));
    }
}
