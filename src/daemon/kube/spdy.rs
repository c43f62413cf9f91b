//! The server side of SPDY/3.1 framing, as far as `kubectl port-forward`
//! needs it (kubectl ≥ 1.30 tunnels a SPDY connection through a WebSocket:
//! see [`super::portforward`]). Pure: bytes in, frames out, and back.
//!
//! Frames (all integers big-endian):
//! - control: `1 | version(15) | type(16)`, `flags(8) | length(24)`, data;
//! - data: `0 | stream id(31)`, `flags(8) | length(24)`, data (`FIN` = 1).
//!
//! Header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are one zlib stream per
//! direction with the protocol's preset dictionary: `u32` count, then
//! `u32`-length-prefixed names and values. Ours are written as stored
//! (uncompressed) deflate blocks, which every inflater reads; theirs are
//! inflated with the dictionary. Flow control: the clients lab serves
//! (moby/spdystream, used by client-go) send no WINDOW_UPDATE and ignore
//! ours, so none is kept.

use std::collections::HashMap;
use std::sync::OnceLock;

pub const VERSION: u16 = 3;
pub const FLAG_FIN: u8 = 0x01;

pub const SYN_STREAM: u16 = 1;
pub const SYN_REPLY: u16 = 2;
pub const RST_STREAM: u16 = 3;
pub const PING: u16 = 6;
pub const GOAWAY: u16 = 7;
pub const HEADERS: u16 = 8;

/// RST_STREAM statuses used here.
pub const PROTOCOL_ERROR: u32 = 1;
pub const REFUSED_STREAM: u32 = 3;

/// The largest frame accepted (a data frame's length field allows 16 MiB;
/// client-go writes at most 32 KiB at a time).
pub const MAX_FRAME: usize = 1 << 24;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpdyError {
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error("malformed {0} frame")]
    Malformed(&'static str),
    #[error("header block: {0}")]
    Headers(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    SynStream {
        id: u32,
        flags: u8,
        headers: HashMap<String, String>,
    },
    Data {
        id: u32,
        flags: u8,
        data: Vec<u8>,
    },
    RstStream {
        id: u32,
        status: u32,
    },
    Ping(u32),
    GoAway,
    /// SETTINGS, WINDOW_UPDATE, HEADERS, SYN_REPLY: nothing to do here.
    Ignored(u16),
}

/// The SPDY/3 header compression dictionary: the protocol's list of
/// length-prefixed words, then a run of raw text (1423 bytes).
pub fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        const WORDS: &[&str] = &[
            "options",
            "head",
            "post",
            "put",
            "delete",
            "trace",
            "accept",
            "accept-charset",
            "accept-encoding",
            "accept-language",
            "accept-ranges",
            "age",
            "allow",
            "authorization",
            "cache-control",
            "connection",
            "content-base",
            "content-encoding",
            "content-language",
            "content-length",
            "content-location",
            "content-md5",
            "content-range",
            "content-type",
            "date",
            "etag",
            "expect",
            "expires",
            "from",
            "host",
            "if-match",
            "if-modified-since",
            "if-none-match",
            "if-range",
            "if-unmodified-since",
            "last-modified",
            "location",
            "max-forwards",
            "pragma",
            "proxy-authenticate",
            "proxy-authorization",
            "range",
            "referer",
            "retry-after",
            "server",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "user-agent",
            "vary",
            "via",
            "warning",
            "www-authenticate",
            "method",
            "get",
            "status",
            "200 OK",
            "version",
            "HTTP/1.1",
            "url",
            "public",
            "set-cookie",
            "keep-alive",
            "origin",
        ];
        const TAIL: &str = concat!(
            "100101201202205206300302303304305306307402405406407408409410411412413414415416417",
            "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently",
            "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error",
            "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct ",
            "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,",
            "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
            "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8",
            "charset=iso-8859-1,utf-,*,enq=0.",
        );
        let mut d = Vec::with_capacity(1423);
        for w in WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(TAIL.as_bytes());
        d
    })
}

pub fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    (b << 16) | a
}

const WINDOW: usize = 32 * 1024;

/// Inflates the peer's header blocks: one zlib stream across frames.
pub struct Inflater {
    state: Box<miniz_oxide::inflate::core::DecompressorOxide>,
    window: Vec<u8>,
    pos: usize,
    started: bool,
}

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflater {
    pub fn new() -> Inflater {
        let dict = dictionary();
        let mut window = vec![0u8; WINDOW];
        window[..dict.len()].copy_from_slice(dict);
        Inflater {
            state: Box::default(),
            window,
            pos: dict.len(),
            started: false,
        }
    }

    /// The next header block's bytes (at most `limit` of them).
    pub fn inflate(&mut self, mut input: &[u8], limit: usize) -> Result<Vec<u8>, SpdyError> {
        use miniz_oxide::inflate::TINFLStatus;
        use miniz_oxide::inflate::core::{decompress, inflate_flags};
        let bad = |m: &str| SpdyError::Headers(m.to_string());
        if !self.started {
            // The zlib header: deflate, and the dictionary this side knows.
            if input.len() < 2
                || input[0] & 0x0f != 8
                || (u16::from(input[0]) << 8 | u16::from(input[1])) % 31 != 0
            {
                return Err(bad("not a zlib stream"));
            }
            if input[1] & 0x20 != 0 {
                if input.len() < 6 {
                    return Err(bad("truncated zlib header"));
                }
                let id = u32::from_be_bytes([input[2], input[3], input[4], input[5]]);
                if id != adler32(dictionary()) {
                    return Err(bad("the stream uses an unknown preset dictionary"));
                }
                input = &input[6..];
            } else {
                input = &input[2..];
            }
            self.started = true;
        }
        let mut out = Vec::new();
        loop {
            let (status, used, n) = decompress(
                &mut self.state,
                input,
                &mut self.window,
                self.pos,
                inflate_flags::TINFL_FLAG_HAS_MORE_INPUT,
            );
            out.extend_from_slice(&self.window[self.pos..self.pos + n]);
            if out.len() > limit {
                return Err(bad("header block too large"));
            }
            self.pos = (self.pos + n) & (WINDOW - 1);
            input = &input[used..];
            match status {
                TINFLStatus::HasMoreOutput => continue,
                TINFLStatus::NeedsMoreInput | TINFLStatus::Done if input.is_empty() => {
                    return Ok(out);
                }
                TINFLStatus::NeedsMoreInput if used > 0 || n > 0 => continue,
                s => return Err(SpdyError::Headers(format!("inflate: {s:?}"))),
            }
        }
    }
}

/// Writes our header blocks: one zlib stream of stored blocks, each block
/// ended as by a sync flush.
#[derive(Default)]
pub struct Deflater {
    started: bool,
}

impl Deflater {
    pub fn deflate(&mut self, block: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(block.len() + 8);
        if !self.started {
            // CMF: deflate, 32K window; FLG: no dictionary, check bits.
            out.extend_from_slice(&[0x78, 0x01]);
            self.started = true;
        }
        for chunk in block.chunks(u16::MAX as usize) {
            let len = chunk.len() as u16;
            out.push(0); // not final, stored
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(chunk);
        }
        // An empty stored block, as a zlib sync flush ends: inflaters (Go's
        // among them) hand out what they have only at such a boundary.
        out.extend_from_slice(&[0, 0, 0, 0xff, 0xff]);
        out
    }
}

/// Encode a header block (names lowercased, as SPDY requires).
pub fn header_block(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (k, v) in headers {
        let k = k.to_ascii_lowercase();
        b.extend_from_slice(&(k.len() as u32).to_be_bytes());
        b.extend_from_slice(k.as_bytes());
        b.extend_from_slice(&(v.len() as u32).to_be_bytes());
        b.extend_from_slice(v.as_bytes());
    }
    b
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

pub fn parse_header_block(b: &[u8]) -> Result<HashMap<String, String>, SpdyError> {
    let bad = || SpdyError::Headers("truncated header block".into());
    let n = u32_at(b, 0).ok_or_else(bad)? as usize;
    let mut at = 4;
    let mut h = HashMap::new();
    for _ in 0..n {
        let kl = u32_at(b, at).ok_or_else(bad)? as usize;
        at += 4;
        let k = b.get(at..at + kl).ok_or_else(bad)?;
        at += kl;
        let vl = u32_at(b, at).ok_or_else(bad)? as usize;
        at += 4;
        let v = b.get(at..at + vl).ok_or_else(bad)?;
        at += vl;
        // Several values are NUL-separated; the ones used here have one.
        let v = v.split(|c| *c == 0).next().unwrap_or_default();
        h.insert(
            String::from_utf8_lossy(k).to_ascii_lowercase(),
            String::from_utf8_lossy(v).to_string(),
        );
    }
    Ok(h)
}

/// Take one whole frame off the front of `buf`, if there is one.
pub fn next_frame(buf: &mut Vec<u8>, inflater: &mut Inflater) -> Result<Option<Frame>, SpdyError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let w0 = u32_at(buf, 0).unwrap_or(0);
    let w1 = u32_at(buf, 4).unwrap_or(0);
    let flags = (w1 >> 24) as u8;
    let len = (w1 & 0x00ff_ffff) as usize;
    if buf.len() < 8 + len {
        return Ok(None);
    }
    let body: Vec<u8> = buf[8..8 + len].to_vec();
    buf.drain(..8 + len);
    if w0 & 0x8000_0000 == 0 {
        return Ok(Some(Frame::Data {
            id: w0 & 0x7fff_ffff,
            flags,
            data: body,
        }));
    }
    let version = ((w0 >> 16) & 0x7fff) as u16;
    if version != VERSION {
        return Err(SpdyError::Version(version));
    }
    let kind = (w0 & 0xffff) as u16;
    Ok(Some(match kind {
        SYN_STREAM => {
            if body.len() < 10 {
                return Err(SpdyError::Malformed("SYN_STREAM"));
            }
            let id = u32_at(&body, 0).unwrap_or(0) & 0x7fff_ffff;
            let block = inflater.inflate(&body[10..], 64 * 1024)?;
            Frame::SynStream {
                id,
                flags,
                headers: parse_header_block(&block)?,
            }
        }
        SYN_REPLY | HEADERS => {
            // Keep the header stream in step even though they mean nothing here.
            if body.len() >= 4 {
                inflater.inflate(&body[4..], 64 * 1024)?;
            }
            Frame::Ignored(kind)
        }
        RST_STREAM => Frame::RstStream {
            id: u32_at(&body, 0).ok_or(SpdyError::Malformed("RST_STREAM"))? & 0x7fff_ffff,
            status: u32_at(&body, 4).ok_or(SpdyError::Malformed("RST_STREAM"))?,
        },
        PING => Frame::Ping(u32_at(&body, 0).ok_or(SpdyError::Malformed("PING"))?),
        GOAWAY => Frame::GoAway,
        other => Frame::Ignored(other),
    }))
}

fn control(kind: u16, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + body.len());
    f.extend_from_slice(&(0x8000u16 | VERSION).to_be_bytes());
    f.extend_from_slice(&kind.to_be_bytes());
    f.extend_from_slice(&((u32::from(flags) << 24) | body.len() as u32).to_be_bytes());
    f.extend_from_slice(body);
    f
}

pub fn syn_reply(id: u32, deflater: &mut Deflater) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    body.extend(deflater.deflate(&header_block(&[])));
    control(SYN_REPLY, 0, &body)
}

pub fn data(id: u32, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + payload.len());
    f.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
    let flags = if fin { FLAG_FIN } else { 0 };
    f.extend_from_slice(&((u32::from(flags) << 24) | payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn rst_stream(id: u32, status: u32) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    body.extend_from_slice(&status.to_be_bytes());
    control(RST_STREAM, 0, &body)
}

pub fn ping(id: u32) -> Vec<u8> {
    control(PING, 0, &id.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_has_the_protocols_size() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert!(d.starts_with(b"\0\0\0\x07options\0\0\0\x04head"));
        assert!(d.ends_with(b"utf-,*,enq=0."));
    }

    #[test]
    fn adler32_matches_known_values() {
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }

    /// Our own header stream reads back through the inflater (stored
    /// blocks, several frames in one zlib stream).
    #[test]
    fn header_blocks_round_trip_across_frames() {
        let mut d = Deflater::default();
        let mut i = Inflater::new();
        for n in 0..3 {
            let port = format!("80{n}");
            let block = header_block(&[("streamType", "data"), ("port", &port)]);
            let z = d.deflate(&block);
            let back = i.inflate(&z, 1 << 16).unwrap();
            let h = parse_header_block(&back).unwrap();
            assert_eq!(h["streamtype"], "data");
            assert_eq!(h["port"], port);
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Two header blocks as a peer writes them: one zlib stream at best
    /// compression with the dictionary, sync-flushed after each block (made
    /// with Python's zlib: `compressobj(9, zdict=…)`, `flush(Z_SYNC_FLUSH)`).
    /// The first refers into the dictionary, the second into the first.
    #[test]
    fn a_peers_compressed_header_blocks_inflate() {
        assert_eq!(adler32(dictionary()), 0xe3c6_a7c2);
        let mut i = Inflater::new();
        let b1 = hex(
            "78f9e3c6a7c202253a703a2b294a4dcc851625aca9a0808614cb45e01c6061606100a4398b20d198094ade8c0600000000ffff",
        );
        let h = parse_header_block(&i.inflate(&b1, 1 << 16).unwrap()).unwrap();
        assert_eq!(h["streamtype"], "error");
        assert_eq!(h["port"], "8080");
        assert_eq!(h["requestid"], "0");
        let b2 = hex("c2aa19540e2512d60b000000ffff");
        let h = parse_header_block(&i.inflate(&b2, 1 << 16).unwrap()).unwrap();
        assert_eq!(h["streamtype"], "data");
        assert_eq!(h["port"], "8080");
        // A stream made with another dictionary is refused, not misread.
        let mut other = b1.clone();
        other[5] ^= 1;
        assert!(Inflater::new().inflate(&other, 1 << 16).is_err());
    }

    proptest::proptest! {
        /// Garbage from a client is an error or a frame, never a panic.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600), ctl in proptest::bool::ANY, kind in 0u16..10, zlib in proptest::bool::ANY) {
            let mut buf = bytes.clone();
            if ctl && buf.len() >= 8 {
                // Make it a SPDY/3 control frame whose length fits.
                buf[0] = 0x80;
                buf[1] = 3;
                buf[2..4].copy_from_slice(&kind.to_be_bytes());
                let len = (buf.len() - 8) as u32;
                buf[5..8].copy_from_slice(&len.to_be_bytes()[1..]);
                if zlib && buf.len() >= 26 {
                    // A valid zlib header with the dictionary: garbage deflate after it.
                    let at = if kind == SYN_STREAM { 18 } else { 12 };
                    buf[at] = 0x78;
                    buf[at + 1] = 0xf9;
                    buf[at + 2..at + 6].copy_from_slice(&adler32(dictionary()).to_be_bytes());
                }
            }
            let mut i = Inflater::new();
            for _ in 0..8 {
                match next_frame(&mut buf, &mut i) {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }

    #[test]
    fn frames_parse_whole_and_wait_for_the_rest() {
        let mut d = Deflater::default();
        let mut i = Inflater::new();
        let block = d.deflate(&header_block(&[("requestid", "7")]));
        let mut body = 3u32.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        body.extend(block);
        let mut wire = control(SYN_STREAM, 0, &body);
        wire.extend(data(3, true, b"hello"));
        wire.extend(ping(1));
        let mut buf = wire[..5].to_vec();
        assert_eq!(next_frame(&mut buf, &mut i).unwrap(), None);
        buf.extend_from_slice(&wire[5..]);
        match next_frame(&mut buf, &mut i).unwrap() {
            Some(Frame::SynStream { id: 3, headers, .. }) => assert_eq!(headers["requestid"], "7"),
            f => panic!("{f:?}"),
        }
        assert_eq!(
            next_frame(&mut buf, &mut i).unwrap(),
            Some(Frame::Data {
                id: 3,
                flags: FLAG_FIN,
                data: b"hello".to_vec()
            })
        );
        assert_eq!(next_frame(&mut buf, &mut i).unwrap(), Some(Frame::Ping(1)));
        assert!(buf.is_empty());
        let mut bad = control(PING, 0, &[1, 2, 3, 4]);
        bad[1] = 2;
        assert_eq!(next_frame(&mut bad, &mut i), Err(SpdyError::Version(2)));
    }
}
