//! Archives: zip (nested, zip64, every method the zip crate reads, ZipCrypto and AES, CP932
//! member names), 7z (sevenz-rust2: every method, solid blocks, AES, encrypted headers), gzip,
//! bzip2, xz, tar; RAR is recognised and reported.
//!
//! Every entry is read through [`read_entry`], which enforces the per-entry size, the per-message
//! decompressed budget and the compression ratio while decompressing, so a bomb stops after a
//! bounded amount of output; what was read before a limit is still inspected.

use std::io::{Cursor, Read, Seek};

use zip::ZipArchive;

use super::{inspect, join, Ctx, Reason};

/// The result of reading one archive entry.
pub(crate) enum Entry {
    /// All of it.
    Whole(Vec<u8>),
    /// The first part: a limit stopped the read (already reported).
    Cut(Vec<u8>),
    /// Encrypted and no password given (or none of them fit): `zip_crypto` or `zip_aes`.
    Encrypted(&'static str),
    /// Unreadable: the error.
    Failed(String),
}

/// A member name: UTF-8 when flagged or valid, otherwise CP932 (what Japanese Windows writes).
pub(crate) fn member_name(raw: &[u8], utf8_flag: bool) -> String {
    if utf8_flag {
        return String::from_utf8_lossy(raw).into_owned();
    }
    match std::str::from_utf8(raw) {
        Ok(s) => s.to_string(),
        Err(_) => encoding_rs::SHIFT_JIS
            .decode_without_bom_handling(raw)
            .0
            .into_owned(),
    }
}

/// Reads entry `i` with all limits. `location` is the entry's own location (for reports).
pub(crate) fn read_entry<R: Read + Seek>(
    ctx: &mut Ctx<'_>,
    z: &mut ZipArchive<R>,
    i: usize,
    location: &str,
) -> Entry {
    let (encrypted, declared, compressed) = match z.by_index_data(i) {
        Ok(e) => (e.encrypted(), e.size(), e.compressed_size()),
        Err(e) => return Entry::Failed(e.to_string()),
    };
    let aes = encrypted
        && z.get_aes_verification_key_and_salt(i)
            .ok()
            .flatten()
            .is_some();
    let l = ctx.limits().clone();
    // A declared ratio far past the limit is a bomb: do not inflate it at all.
    if declared > l.ratio_grace
        && compressed > 0
        && declared / compressed.max(1) > l.compression_ratio * 10
    {
        ctx.unscannable(location, Reason::LimitExceeded, "compression_ratio");
        return Entry::Cut(Vec::new());
    }
    let cap = l.entry_bytes.min(ctx.decompressed_left);
    let mut passwords: Vec<String> = Vec::new();
    if encrypted {
        passwords = ctx.passwords();
        if passwords.is_empty() {
            return Entry::Encrypted(if aes { "zip_aes" } else { "zip_crypto" });
        }
    }
    let attempts: Vec<Option<&str>> = if encrypted {
        passwords.iter().map(|p| Some(p.as_str())).collect()
    } else {
        vec![None]
    };
    for pw in attempts {
        let file = match pw {
            Some(p) => z.by_index_decrypt(i, p.as_bytes()),
            None => z.by_index(i),
        };
        let mut file = match file {
            Ok(f) => f,
            Err(zip::result::ZipError::InvalidPassword) => continue,
            Err(e) if pw.is_some() && e.to_string().to_ascii_lowercase().contains("password") => {
                continue
            }
            Err(e) => return Entry::Failed(e.to_string()),
        };
        let mut out = Vec::with_capacity(declared.min(cap).min(16 << 20) as usize);
        // Read straight into `out` up to the first limit (one byte past it shows it was passed):
        // the entry cap, or the ratio limit (past the grace bytes, `compression_ratio` times the
        // compressed size). A 64 KiB bounce buffer had been zeroed for every entry.
        let ratio_limit = l
            .ratio_grace
            .max(compressed.max(1).saturating_mul(l.compression_ratio));
        let limit = cap.min(ratio_limit);
        if let Err(e) = (&mut file)
            .take(limit.saturating_add(1))
            .read_to_end(&mut out)
        {
            // ZipCrypto has no password check before the data: a wrong password shows as a
            // broken stream. Try the next password; report corruption when none is left.
            if !(pw.is_some() && out.is_empty()) {
                out.truncate(limit as usize);
                ctx.decompressed_left = ctx.decompressed_left.saturating_sub(out.len() as u64);
                ctx.unscannable(location, Reason::Corrupt, e.to_string());
                return Entry::Cut(out);
            }
        }
        let mut cut: Option<&'static str> = None;
        if out.len() as u64 > limit {
            out.truncate(limit as usize);
            cut = Some(if cap > ratio_limit {
                "compression_ratio"
            } else if cap < l.entry_bytes {
                "message_decompressed"
            } else {
                "entry_size"
            });
        }
        if pw.is_some() && out.is_empty() && declared > 0 {
            continue;
        }
        ctx.decompressed_left = ctx.decompressed_left.saturating_sub(out.len() as u64);
        return match cut {
            Some(which) => {
                ctx.unscannable(location, Reason::LimitExceeded, which);
                Entry::Cut(out)
            }
            None => Entry::Whole(out),
        };
    }
    Entry::Encrypted(if aes { "zip_aes" } else { "zip_crypto" })
}

/// A zip archive: every member inspected as a file of its own.
pub(crate) fn zip(ctx: &mut Ctx<'_>, location: &str, data: &[u8], depth: u32) {
    let mut z = match ZipArchive::new(Cursor::new(data)) {
        Ok(z) => z,
        Err(e) => {
            ctx.unscannable(location, Reason::Corrupt, format!("zip: {e}"));
            return;
        }
    };
    let n = z.len();
    let limit = ctx.limits().archive_entries;
    if n > limit {
        ctx.unscannable(location, Reason::LimitExceeded, "archive_entries");
    }
    for i in 0..n.min(limit) {
        let (name, is_dir, declared) = match z.by_index_data(i) {
            Ok(e) => (
                member_name(e.name_raw(), e.flags().as_u16() & 0x0800 != 0),
                e.is_dir(),
                e.size(),
            ),
            Err(e) => {
                ctx.unscannable(location, Reason::Corrupt, format!("entry {i}: {e}"));
                continue;
            }
        };
        if is_dir {
            continue;
        }
        let loc = join(location, name.trim_start_matches('/'));
        if !ctx.take_object(&loc) || !ctx.in_time(&loc) {
            return;
        }
        match read_entry(ctx, &mut z, i, &loc) {
            Entry::Whole(bytes) | Entry::Cut(bytes) => {
                let base = name.rsplit('/').next().unwrap_or(&name).to_string();
                inspect(ctx, &loc, &base, None, &bytes, depth + 1);
            }
            Entry::Encrypted(how) => {
                // The central directory is not encrypted: name and size are still reported.
                let base = name.rsplit('/').next().unwrap_or(&name).to_string();
                encrypted_member(ctx, &loc, &base, declared, depth + 1, how);
            }
            Entry::Failed(e) => ctx.unscannable(&loc, Reason::Corrupt, e),
        }
    }
}

/// An archive member that could not be decrypted: its name and declared size are still listed
/// (zip's central directory and readable 7z headers show them), and it is reported encrypted.
fn encrypted_member(ctx: &mut Ctx<'_>, loc: &str, name: &str, size: u64, depth: u32, how: &str) {
    ctx.out.attachments.push(super::Attachment {
        location: loc.to_string(),
        name: name.to_string(),
        kind: super::filetype::FileKind::Unknown,
        size,
        extension_mismatch: false,
        depth,
        ..super::Attachment::default()
    });
    ctx.unscannable(loc, Reason::Encrypted, how);
}

/// A gzip file: the one member (its name from the header, or the archive name without `.gz`).
pub(crate) fn gzip(ctx: &mut Ctx<'_>, location: &str, name: &str, data: &[u8], depth: u32) {
    let d = flate2::read::GzDecoder::new(data);
    let inner = d
        .header()
        .and_then(|h| h.filename())
        .map(|f| member_name(f, false))
        .unwrap_or_else(|| inner_name(name, &[".gz", ".gzip"], ".tgz"));
    single_stream(ctx, location, &inner, d, data.len(), depth, "gzip");
}

/// A standalone bzip2 file (`名簿.csv.bz2`): the one member, named after the file.
pub(crate) fn bzip2(ctx: &mut Ctx<'_>, location: &str, name: &str, data: &[u8], depth: u32) {
    let d = ::bzip2::read::MultiBzDecoder::new(data);
    let inner = inner_name(name, &[".bz2", ".bzip2"], ".tbz2");
    single_stream(ctx, location, &inner, d, data.len(), depth, "bzip2");
}

/// A standalone xz file: the one member (all concatenated streams), named after the file.
pub(crate) fn xz(ctx: &mut Ctx<'_>, location: &str, name: &str, data: &[u8], depth: u32) {
    let d = lzma_rust2::XzReader::new_mem_limit(data, true, DECODER_MEMORY_KB as u32);
    let inner = inner_name(name, &[".xz"], ".txz");
    single_stream(ctx, location, &inner, d, data.len(), depth, "xz");
}

/// The member name of a one-file compressed stream: the file's name without its suffix
/// (`data.csv.xz` -> `data.csv`), `archive.tar` for `.tgz`-style names, else `data`.
fn inner_name(name: &str, suffixes: &[&str], tar_suffix: &str) -> String {
    let lower = name.to_ascii_lowercase();
    for s in suffixes {
        if lower.ends_with(s) && name.len() > s.len() {
            return name[..name.len() - s.len()].to_string();
        }
    }
    if lower.ends_with(tar_suffix) {
        return "archive.tar".to_string();
    }
    "data".to_string()
}

/// Decompresses one stream with the entry size, message budget and ratio limits, then inspects
/// what came out (also the part before a limit or a broken end).
fn single_stream(
    ctx: &mut Ctx<'_>,
    location: &str,
    inner: &str,
    mut d: impl Read,
    compressed: usize,
    depth: u32,
    what: &str,
) {
    let l = ctx.limits().clone();
    let cap = l.entry_bytes.min(ctx.decompressed_left);
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let loc = join(location, inner);
    loop {
        match d.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = (cap as usize).saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
                if n > room {
                    let which = if cap < l.entry_bytes {
                        "message_decompressed"
                    } else {
                        "entry_size"
                    };
                    ctx.unscannable(&loc, Reason::LimitExceeded, which);
                    break;
                }
                if out.len() as u64 > l.ratio_grace
                    && out.len() as u64 > compressed as u64 * l.compression_ratio
                {
                    ctx.unscannable(&loc, Reason::LimitExceeded, "compression_ratio");
                    break;
                }
            }
            Err(e) => {
                ctx.unscannable(location, Reason::Corrupt, format!("{what}: {e}"));
                break;
            }
        }
    }
    ctx.decompressed_left = ctx.decompressed_left.saturating_sub(out.len() as u64);
    if !out.is_empty() && ctx.take_object(&loc) {
        inspect(ctx, &loc, inner, None, &out, depth + 1);
    }
}

/// The dictionary an LZMA / LZMA2 / xz stream may declare: 1.5 GiB, the most 7-Zip writes
/// (p7zip's `-mx=9` declares 256 MiB). The window of these decoders grows with the output, which
/// the entry and message limits bound, so a large declared dictionary costs nothing by itself.
const DECODER_MEMORY_KB: usize = 1536 * 1024 + 64;
/// PPMd allocates its model up front: at most 256 MiB (7-Zip's ultra preset uses 192 MiB).
const PPMD_MEMORY: u32 = 256 << 20;
/// A 7z header (encoded headers are decompressed in memory): at most 64 MiB.
const HEADER_MEMORY_KB: usize = 64 * 1024;

/// A 7z archive: every member inspected as a file of its own, block by block (a solid block is
/// one compressed stream holding several members). Every method sevenz-rust2 reads (LZMA, LZMA2,
/// PPMd, BZip2, Deflate, Copy and the BCJ filters); AES-256 members opened with the caller's
/// passwords and the PPAP candidates; headers encrypted with `-mhe` reported as
/// `encrypted: 7z_headers` when no password fits, members as `encrypted: 7z_aes` with their
/// names and sizes. Limits as for zip: entries, entry size, message budget, ratio (declared and
/// while decoding) and depth. A limit hit inside a solid block ends that block (the rest of it
/// cannot be reached without decoding it) and its later members are reported.
pub(crate) fn sevenz(ctx: &mut Ctx<'_>, location: &str, data: &[u8], depth: u32) {
    use sevenz_rust2::{Archive, BlockDecoder, Error as SzError, Password};
    let mut src = Cursor::new(data);
    let mut password = Password::empty();
    let archive = match Archive::read_with_memory_limit(&mut src, &password, HEADER_MEMORY_KB) {
        Ok(a) => a,
        Err(SzError::PasswordRequired) => {
            let mut opened = None;
            for p in ctx.passwords() {
                // Each try derives a key (up to 2^24 SHA-256 rounds): the time budget bounds
                // how many an archive can make us do.
                if !ctx.in_time(location) {
                    return;
                }
                let pw = Password::from(p.as_str());
                if let Ok(a) = Archive::read_with_memory_limit(&mut src, &pw, HEADER_MEMORY_KB) {
                    opened = Some((a, pw));
                    break;
                }
            }
            match opened {
                Some((a, pw)) => {
                    password = pw;
                    a
                }
                None => {
                    ctx.unscannable(location, Reason::Encrypted, "7z_headers");
                    return;
                }
            }
        }
        Err(e) => {
            let (reason, detail) = sevenz_reason(&e);
            ctx.unscannable(location, reason, detail);
            return;
        }
    };
    let l = ctx.limits().clone();
    let entries_limit = l.archive_entries;
    let listed = archive.files.iter().filter(|f| !f.is_directory).count();
    if listed > entries_limit {
        ctx.unscannable(location, Reason::LimitExceeded, "archive_entries");
    }
    let compressed = data.len().max(1) as u64;
    let mut taken = 0usize;
    let mut produced = 0u64;
    let mut stop = false;
    let names = |e: &sevenz_rust2::ArchiveEntry| {
        let name = e.name().replace('\\', "/");
        let base = name.rsplit('/').next().unwrap_or(&name).to_string();
        (join(location, name.trim_start_matches('/')), base)
    };
    // Members without data (empty files) belong to no block.
    for (i, f) in archive.files.iter().enumerate() {
        if archive.stream_map.file_block_index[i].is_none() && !f.is_directory && !f.is_anti_item {
            taken += 1;
            let (loc, base) = names(f);
            if taken > entries_limit || !ctx.take_object(&loc) {
                stop = true;
                break;
            }
            inspect(ctx, &loc, &base, None, &[], depth + 1);
        }
    }
    let passwords = ctx.passwords();
    for block in 0..archive.blocks.len() {
        if stop {
            break;
        }
        let first = archive.stream_map.block_first_file_index[block];
        let members: Vec<(String, String, u64, bool)> =
            BlockDecoder::new(1, block, &archive, &password, &mut src)
                .entries()
                .iter()
                .map(|e| {
                    let (loc, base) = names(e);
                    (loc, base, e.size(), e.is_directory || !e.has_stream)
                })
                .collect();
        let encrypted = archive.is_file_encrypted(first);
        let ppmd_memory = archive.blocks[block]
            .coders
            .iter()
            .filter(|c| c.encoder_method_id() == sevenz_rust2::EncoderMethod::ID_PPMD)
            .filter_map(|c| c.properties().get(1..5))
            .map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]))
            .max();
        if ppmd_memory.is_some_and(|m| m > PPMD_MEMORY) {
            for (loc, _, _, empty) in &members {
                if !*empty {
                    ctx.unscannable(loc, Reason::LimitExceeded, "decoder_memory");
                }
            }
            continue;
        }
        let attempts: Vec<Password> = if !encrypted {
            vec![password.clone()]
        } else {
            passwords
                .iter()
                .map(|p| Password::from(p.as_str()))
                .collect()
        };
        let mut done = false;
        for pw in &attempts {
            if !ctx.in_time(location) {
                return;
            }
            // Encrypted blocks are decoded whole before anything is inspected: a wrong password
            // shows as a broken stream or a CRC error, and garbage must not become findings.
            let mut pending: Vec<(String, String, Vec<u8>)> = Vec::new();
            let mut visited = 0usize;
            let mut failure: Option<(String, Reason, String)> = None;
            let mut cut_block = false;
            let budget_before = ctx.decompressed_left;
            let produced_before = produced;
            let result = BlockDecoder::new_with_memory_limit(
                1,
                DECODER_MEMORY_KB,
                block,
                &archive,
                pw,
                &mut src,
            )
            .for_each_entries(&mut |entry, reader| {
                visited += 1;
                if entry.is_directory || entry.is_anti_item {
                    return Ok(true);
                }
                let (loc, base) = names(entry);
                taken += 1;
                if taken > entries_limit {
                    stop = true;
                    return Ok(false);
                }
                if !ctx.take_object(&loc) || !ctx.in_time(&loc) {
                    stop = true;
                    return Ok(false);
                }
                let declared = entry.size();
                if declared > l.ratio_grace && declared / compressed > l.compression_ratio * 10 {
                    ctx.unscannable(&loc, Reason::LimitExceeded, "compression_ratio");
                    cut_block = true;
                    return Ok(false);
                }
                let cap = l.entry_bytes.min(ctx.decompressed_left);
                let mut out = Vec::with_capacity(declared.min(cap).min(16 << 20) as usize);
                let mut buf = [0u8; 64 * 1024];
                let mut cut: Option<&'static str> = None;
                loop {
                    let n = match reader.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) => {
                            let reason = if encrypted {
                                Reason::Encrypted
                            } else {
                                Reason::Corrupt
                            };
                            failure = Some((loc.clone(), reason, e.to_string()));
                            return Ok(false);
                        }
                    };
                    let room = (cap as usize).saturating_sub(out.len());
                    out.extend_from_slice(&buf[..n.min(room)]);
                    produced += n.min(room) as u64;
                    if n > room {
                        cut = Some(if cap < l.entry_bytes {
                            "message_decompressed"
                        } else {
                            "entry_size"
                        });
                        break;
                    }
                    if produced > l.ratio_grace && produced > compressed * l.compression_ratio {
                        cut = Some("compression_ratio");
                        break;
                    }
                }
                ctx.decompressed_left = ctx.decompressed_left.saturating_sub(out.len() as u64);
                if let Some(which) = cut {
                    ctx.unscannable(&loc, Reason::LimitExceeded, which);
                    cut_block = true;
                }
                if encrypted {
                    pending.push((loc, base, out));
                } else {
                    inspect(ctx, &loc, &base, None, &out, depth + 1);
                }
                Ok(cut.is_none())
            });
            if let Err(e) = result {
                if failure.is_none() {
                    let (reason, detail) = sevenz_reason(&e);
                    failure = Some((location.to_string(), reason, detail));
                }
            }
            if encrypted && failure.is_some() {
                // Most likely the wrong password: undo this attempt and try the next one.
                ctx.decompressed_left = budget_before;
                produced = produced_before;
                taken -= pending.len();
                continue;
            }
            for (loc, base, out) in pending {
                inspect(ctx, &loc, &base, None, &out, depth + 1);
            }
            if let Some((loc, reason, detail)) = failure {
                ctx.unscannable(&loc, reason, detail);
            }
            if cut_block && !stop {
                for (loc, _, _, empty) in members.iter().skip(visited) {
                    if !empty {
                        ctx.unscannable(loc, Reason::LimitExceeded, "solid_block");
                    }
                }
            }
            done = true;
            break;
        }
        if !done {
            // No password (or none of them fit): the names and sizes are still reported.
            for (loc, base, size, empty) in &members {
                if *empty {
                    continue;
                }
                taken += 1;
                if taken > entries_limit || !ctx.take_object(loc) {
                    stop = true;
                    break;
                }
                encrypted_member(ctx, loc, base, *size, depth + 1, "7z_aes");
            }
        }
    }
}

/// How a 7z error is reported: too much decoder or header memory is a limit, an unknown method
/// unsupported, the rest corrupt.
fn sevenz_reason(e: &sevenz_rust2::Error) -> (Reason, String) {
    use sevenz_rust2::Error as SzError;
    match e {
        SzError::MaxMemLimited { .. } => (Reason::LimitExceeded, "decoder_memory".into()),
        SzError::UnsupportedCompressionMethod(m) => {
            (Reason::UnsupportedFormat, format!("7z method {m}"))
        }
        e => (Reason::Corrupt, format!("7z: {e}")),
    }
}

/// A tar archive (ustar / GNU): regular files inspected.
pub(crate) fn tar(ctx: &mut Ctx<'_>, location: &str, data: &[u8], depth: u32) {
    let mut off = 0usize;
    let mut count = 0usize;
    let mut long_name: Option<String> = None;
    while off + 512 <= data.len() {
        let h = &data[off..off + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let field = |a: usize, b: usize| {
            let f = &h[a..b];
            let end = f.iter().position(|&c| c == 0).unwrap_or(f.len());
            &f[..end]
        };
        let size = std::str::from_utf8(field(124, 136))
            .ok()
            .and_then(|s| u64::from_str_radix(s.trim(), 8).ok());
        let Some(size) = size else {
            ctx.unscannable(location, Reason::Corrupt, "tar: bad header");
            return;
        };
        let typeflag = h[156];
        let mut name = member_name(field(0, 100), false);
        let prefix = field(345, 500);
        if &h[257..262] == b"ustar" && !prefix.is_empty() {
            name = format!("{}/{name}", member_name(prefix, false));
        }
        if let Some(l) = long_name.take() {
            name = l;
        }
        let start = off + 512;
        let end = start.saturating_add(size as usize).min(data.len());
        match typeflag {
            b'L' => {
                long_name = Some(
                    member_name(&data[start..end], false)
                        .trim_end_matches('\0')
                        .to_string(),
                )
            }
            b'0' | 0 | b'7' => {
                count += 1;
                if count > ctx.limits().archive_entries {
                    ctx.unscannable(location, Reason::LimitExceeded, "archive_entries");
                    return;
                }
                let loc = join(location, &name);
                if !ctx.take_object(&loc) {
                    return;
                }
                if end < start + size as usize {
                    ctx.unscannable(&loc, Reason::Corrupt, "truncated");
                }
                let base = name.rsplit('/').next().unwrap_or(&name).to_string();
                let cap = (ctx.limits().entry_bytes as usize).min(end - start);
                inspect(ctx, &loc, &base, None, &data[start..start + cap], depth + 1);
            }
            _ => {}
        }
        off = start + (size as usize).div_ceil(512) * 512;
    }
}

/// RAR: not extracted; encrypted archives and headers are told apart where the format says so.
pub(crate) fn rar(ctx: &mut Ctx<'_>, location: &str, data: &[u8]) {
    // RAR 5: after the signature, an archive encryption header (type 4) means encrypted headers.
    // RAR 4: the main header flag 0x0080 (block headers encrypted) or a file header flag 0x0004.
    let encrypted = if data.starts_with(b"Rar!\x1A\x07\x01\x00") {
        // header CRC32 (4), size (vint), type (vint)
        let mut i = 8 + 4;
        let mut vint = || -> Option<u64> {
            let mut v = 0u64;
            for k in 0..10 {
                let b = *data.get(i)?;
                i += 1;
                v |= u64::from(b & 0x7F) << (7 * k);
                if b & 0x80 == 0 {
                    return Some(v);
                }
            }
            None
        };
        let _size = vint();
        vint() == Some(4)
    } else {
        let main_flags = data
            .get(7 + 3..7 + 5)
            .map(|f| u16::from_le_bytes([f[0], f[1]]));
        let file_flags = data
            .get(7 + 13 + 3..7 + 13 + 5)
            .map(|f| u16::from_le_bytes([f[0], f[1]]));
        main_flags.is_some_and(|f| f & 0x0080 != 0)
            || (data.get(7 + 13 + 2) == Some(&0x74) && file_flags.is_some_and(|f| f & 0x0004 != 0))
    };
    if encrypted {
        ctx.unscannable(location, Reason::Encrypted, "rar");
    } else {
        ctx.unscannable(location, Reason::UnsupportedFormat, "rar");
    }
}
