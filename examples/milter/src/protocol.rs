//! Milter protocol version 6, the wire part: packets, command and reply codes, option
//! negotiation. Written from sendmail's `mfdef.h` as summarised in the team's integration notes
//! (no libmilter). A packet is a big-endian u32 length (command byte + data), the command byte,
//! then the data; strings are NUL-terminated.

use std::io::{self, Read, Write};

/// Commands, MTA to milter.
pub mod cmd {
    pub const ABORT: u8 = b'A';
    pub const BODY: u8 = b'B';
    pub const CONNECT: u8 = b'C';
    pub const MACRO: u8 = b'D';
    pub const BODYEOB: u8 = b'E';
    pub const HELO: u8 = b'H';
    pub const QUIT_NC: u8 = b'K';
    pub const HEADER: u8 = b'L';
    pub const MAIL: u8 = b'M';
    pub const EOH: u8 = b'N';
    pub const OPTNEG: u8 = b'O';
    pub const QUIT: u8 = b'Q';
    pub const RCPT: u8 = b'R';
    pub const DATA: u8 = b'T';
    pub const UNKNOWN: u8 = b'U';
}

/// Replies, milter to MTA.
pub mod reply {
    pub const ADDHEADER: u8 = b'h';
    pub const REPLBODY: u8 = b'b';
    pub const CHGHEADER: u8 = b'm';
    pub const CONTINUE: u8 = b'c';
    pub const PROGRESS: u8 = b'p';
    pub const QUARANTINE: u8 = b'q';
    pub const REPLYCODE: u8 = b'y';
}

/// Actions the milter may take (`SMFIF_*`).
pub mod action {
    pub const ADDHDRS: u32 = 0x01;
    pub const CHGBODY: u32 = 0x02;
    pub const CHGHDRS: u32 = 0x10;
    pub const QUARANTINE: u32 = 0x20;
}

/// Protocol steps (`SMFIP_*`).
pub mod step {
    pub const NOUNKNOWN: u32 = 0x100;
    pub const NR_CONN: u32 = 0x1000;
    pub const NR_HELO: u32 = 0x2000;
    pub const NR_MAIL: u32 = 0x4000;
    pub const NR_RCPT: u32 = 0x8000;
    pub const NR_DATA: u32 = 0x10000;
    pub const NR_UNKN: u32 = 0x20000;
    pub const NR_EOH: u32 = 0x40000;
    pub const NR_BODY: u32 = 0x80000;
    pub const NR_HDR: u32 = 0x80;
    pub const HDR_LEADSPC: u32 = 0x100000;
}

/// Macro stages of the OPTNEG reply (`SMFIM_*`).
pub mod stage {
    pub const CONNECT: u32 = 0;
    pub const HELO: u32 = 1;
    pub const ENVFROM: u32 = 2;
    pub const ENVRCPT: u32 = 3;
    pub const EOM: u32 = 5;
}

/// The largest packet accepted. Postfix sends body chunks of at most 65,535 bytes and headers
/// of at most `header_size_limit` (100 KiB by default); anything near this is not a milter.
pub const MAX_PACKET: usize = 1 << 20;

/// One packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Command or reply code.
    pub code: u8,
    /// Payload.
    pub data: Vec<u8>,
}

/// Reads one packet; `Ok(None)` at a clean end of stream before a packet starts.
pub fn read_packet(r: &mut impl Read) -> io::Result<Option<Packet>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > MAX_PACKET {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("packet length {len} out of range"),
        ));
    }
    // Memory grows with the bytes that arrive, not with the length the peer declared.
    let mut code = [0u8; 1];
    r.read_exact(&mut code)?;
    let mut data = Vec::with_capacity((len - 1).min(64 * 1024));
    let got = r.by_ref().take(len as u64 - 1).read_to_end(&mut data)?;
    if got != len - 1 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some(Packet {
        code: code[0],
        data,
    }))
}

/// Writes one packet.
pub fn write_packet(w: &mut impl Write, code: u8, data: &[u8]) -> io::Result<()> {
    let len = u32::try_from(data.len() + 1)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "packet too large"))?;
    let mut out = Vec::with_capacity(5 + data.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.push(code);
    out.extend_from_slice(data);
    w.write_all(&out)
}

/// Splits NUL-terminated strings (a trailing piece without NUL is kept too).
pub fn split_strings(data: &[u8]) -> Vec<&[u8]> {
    let mut v: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    if data.last() == Some(&0) {
        v.pop();
    }
    v
}

/// What the MTA offered in OPTNEG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    /// Protocol version.
    pub version: u32,
    /// Actions allowed.
    pub actions: u32,
    /// Steps it can leave out.
    pub steps: u32,
}

impl Offer {
    /// Parses the OPTNEG payload (three big-endian u32).
    pub fn parse(data: &[u8]) -> Option<Offer> {
        if data.len() < 12 {
            return None;
        }
        let u = |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
        Some(Offer {
            version: u(0),
            actions: u(4),
            steps: u(8),
        })
    }
}

/// What this milter asks for: version 6, adding and changing headers, replacing the body (for
/// `action = "link"` only: attachments replaced by download links) and quarantine (least
/// privilege: no recipient changes), no UNKNOWN commands, and leading spaces of header values
/// kept.
pub const WANT_ACTIONS: u32 =
    action::ADDHDRS | action::CHGBODY | action::CHGHDRS | action::QUARANTINE;
/// Steps asked for (each only if offered): no reply to anything before the end of the message
/// (one round trip per message instead of one per header), and leading spaces of header values
/// kept. `Conn::after_read` keeps the MTA's unanswered packets from waiting on delayed ACKs.
pub const WANT_STEPS: u32 = step::NOUNKNOWN
    | step::NR_CONN
    | step::NR_HELO
    | step::NR_MAIL
    | step::NR_RCPT
    | step::NR_DATA
    | step::NR_UNKN
    | step::NR_EOH
    | step::NR_BODY
    | step::NR_HDR
    | step::HDR_LEADSPC;

/// The macros asked for, per stage.
pub const MACROS: &[(u32, &str)] = &[
    (
        stage::CONNECT,
        "j {client_addr} {client_name} {daemon_name}",
    ),
    (stage::HELO, "{tls_version} {cipher}"),
    (stage::ENVFROM, "i {auth_authen} {auth_type} {mail_addr}"),
    (stage::ENVRCPT, "i {rcpt_addr}"),
    (stage::EOM, "i"),
];

/// The negotiated options and the OPTNEG reply payload.
pub fn negotiate(offer: Offer) -> (Offer, Vec<u8>) {
    let agreed = Offer {
        version: offer.version.min(6),
        actions: offer.actions & WANT_ACTIONS,
        steps: offer.steps & WANT_STEPS,
    };
    let mut out = Vec::new();
    out.extend_from_slice(&agreed.version.to_be_bytes());
    out.extend_from_slice(&agreed.actions.to_be_bytes());
    out.extend_from_slice(&agreed.steps.to_be_bytes());
    if agreed.version >= 6 {
        for (st, list) in MACROS {
            out.extend_from_slice(&st.to_be_bytes());
            out.extend_from_slice(list.as_bytes());
            out.push(0);
        }
    }
    (agreed, out)
}

/// The step bit that says "no reply" for a command, if there is one.
pub fn no_reply_bit(code: u8) -> Option<u32> {
    Some(match code {
        cmd::CONNECT => step::NR_CONN,
        cmd::HELO => step::NR_HELO,
        cmd::MAIL => step::NR_MAIL,
        cmd::RCPT => step::NR_RCPT,
        cmd::DATA => step::NR_DATA,
        cmd::UNKNOWN => step::NR_UNKN,
        cmd::EOH => step::NR_EOH,
        cmd::BODY => step::NR_BODY,
        cmd::HEADER => step::NR_HDR,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_round_trip_and_bad_lengths_are_errors() {
        let mut buf = Vec::new();
        write_packet(&mut buf, cmd::HEADER, b"Subject\0 hi\0").unwrap();
        assert_eq!(&buf[..5], &[0, 0, 0, 13, b'L']);
        let p = read_packet(&mut buf.as_slice()).unwrap().unwrap();
        assert_eq!(p.code, cmd::HEADER);
        assert_eq!(split_strings(&p.data), vec![&b"Subject"[..], &b" hi"[..]]);
        assert!(read_packet(&mut &b""[..]).unwrap().is_none());
        assert!(read_packet(&mut &[0u8, 0, 0][..]).is_err());
        assert!(read_packet(&mut &[0u8, 0, 0, 0][..]).is_err());
        assert!(read_packet(&mut &[0xffu8, 0, 0, 1, b'x'][..]).is_err());
        assert!(read_packet(&mut &[0u8, 0, 0, 9, b'B', 1][..]).is_err());
    }

    #[test]
    fn negotiation_takes_subsets_and_adds_macros() {
        // What Postfix 3.7 offers.
        let (agreed, payload) = negotiate(Offer {
            version: 6,
            actions: 0x1ff,
            steps: 0x1fffff,
        });
        assert_eq!(agreed.version, 6);
        assert_eq!(agreed.actions, 0x33);
        assert_eq!(agreed.steps, WANT_STEPS);
        assert_eq!(Offer::parse(&payload), Some(agreed));
        assert!(String::from_utf8_lossy(&payload).contains("{auth_authen}"));
        // An old MTA: only what it offers, no macro lists.
        let (agreed, payload) = negotiate(Offer {
            version: 2,
            actions: 0x01,
            steps: 0,
        });
        assert_eq!((agreed.version, agreed.actions, agreed.steps), (2, 1, 0));
        assert_eq!(payload.len(), 12);
    }
}
