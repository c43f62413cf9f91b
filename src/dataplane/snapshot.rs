//! The flow-table snapshot a restarted daemon restores from: a compact
//! little-endian binary file (39 bytes per flow, 21 per affinity entry,
//! plus the service-port and service names once), with each expiry stored
//! as time left so a process with another clock epoch can load it.
//!
//! ```text
//! magic "LABFLOW\0" | version u32 | port names | service names | flows | affinity
//! names:    count u32, then per name: len u16, UTF-8 bytes
//! flows:    count u32, then per flow (39 bytes):
//!           proto u8 | orig src u32 sport u16 dst u32 dport u16
//!           | reply src u32 sport u16 dst u32 dport u16
//!           | tcp state u8 (0 = UDP) | flags u8 (1 fin_orig, 2 fin_reply, 4 replied)
//!           | port name index u32 | service name index u32 | ms left u32
//! affinity: count u32, then per entry (21 bytes):
//!           vip u32 | proto u8 | port u16 | client u32 | backend u32 port u16 | ms left u32
//! ```

use super::affinity::{AffinityKey, Sticky};
use super::conntrack::{Flow, TcpState, Tuple};
use std::net::Ipv4Addr;
use std::time::Duration;

pub const MAGIC: &[u8; 8] = b"LABFLOW\0";
pub const VERSION: u32 = 2;
pub const FLOW_RECORD: usize = 39;
pub const AFFINITY_RECORD: usize = 21;
/// Longest name written (longer ones are cut; Kubernetes names are far
/// shorter).
const NAME_MAX: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RestoreError {
    #[error("flow snapshot is not valid: {0}")]
    Parse(&'static str),
    #[error("flow snapshot version {0} is not supported (this build reads {VERSION})")]
    Version(u32),
}

/// A flow as saved: counter indexes refer to the snapshot's name lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedFlow {
    pub orig: Tuple,
    pub reply: Tuple,
    pub port: u32,
    pub service: u32,
    pub tcp: Option<TcpState>,
    pub fin_orig: bool,
    pub fin_reply: bool,
    pub replied: bool,
    pub left: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedAffinity {
    pub key: AffinityKey,
    pub backend: (Ipv4Addr, u16),
    pub left: Duration,
}

#[derive(Debug, Default)]
pub struct Decoded {
    pub ports: Vec<String>,
    pub services: Vec<String>,
    pub flows: Vec<SavedFlow>,
    pub affinity: Vec<SavedAffinity>,
}

fn tcp_code(s: Option<TcpState>) -> u8 {
    use TcpState::*;
    match s {
        None => 0,
        Some(SynSent) => 1,
        Some(SynRecv) => 2,
        Some(Established) => 3,
        Some(FinWait) => 4,
        Some(CloseWait) => 5,
        Some(LastAck) => 6,
        Some(TimeWait) => 7,
        Some(Close) => 8,
    }
}

fn tcp_state(c: u8) -> Option<Option<TcpState>> {
    use TcpState::*;
    Some(match c {
        0 => None,
        1 => Some(SynSent),
        2 => Some(SynRecv),
        3 => Some(Established),
        4 => Some(FinWait),
        5 => Some(CloseWait),
        6 => Some(LastAck),
        7 => Some(TimeWait),
        8 => Some(Close),
        _ => return None,
    })
}

fn ms_left(expires: Duration, now: Duration) -> u32 {
    expires
        .saturating_sub(now)
        .as_millis()
        .min(u128::from(u32::MAX)) as u32
}

/// Writes a snapshot section by section: [`Encoder::new`] with the names,
/// then flows, then affinity entries, then [`Encoder::finish`].
pub struct Encoder {
    out: Vec<u8>,
    count_at: usize,
    count: u32,
    now: Duration,
    in_affinity: bool,
    /// Which name indexes are in use (a flow of a deleted Service, or one
    /// whose index was retired, is not saved: its VIP is gone).
    live_ports: Vec<bool>,
    live_services: Vec<bool>,
}

fn put_names(out: &mut Vec<u8>, names: &[String]) {
    out.extend_from_slice(&(names.len() as u32).to_le_bytes());
    for n in names {
        let mut cut = n.len().min(NAME_MAX);
        while !n.is_char_boundary(cut) {
            cut -= 1;
        }
        out.extend_from_slice(&(cut as u16).to_le_bytes());
        out.extend_from_slice(&n.as_bytes()[..cut]);
    }
}

fn put_tuple(out: &mut Vec<u8>, t: &Tuple) {
    out.extend_from_slice(&t.src.octets());
    out.extend_from_slice(&t.sport.to_le_bytes());
    out.extend_from_slice(&t.dst.octets());
    out.extend_from_slice(&t.dport.to_le_bytes());
}

impl Encoder {
    /// Expiries are written as time left after `now`.
    pub fn new(ports: &[String], services: &[String], now: Duration, flows_hint: usize) -> Self {
        let mut out = Vec::with_capacity(64 + flows_hint * FLOW_RECORD);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        put_names(&mut out, ports);
        put_names(&mut out, services);
        let count_at = out.len();
        out.extend_from_slice(&0u32.to_le_bytes());
        let live = |v: &[String]| v.iter().map(|n| !n.is_empty()).collect();
        Encoder {
            out,
            count_at,
            count: 0,
            now,
            in_affinity: false,
            live_ports: live(ports),
            live_services: live(services),
        }
    }

    /// Add a flow (skipped if already expired at `now`).
    pub fn flow(&mut self, f: &Flow) {
        debug_assert!(!self.in_affinity);
        if f.expires <= self.now
            || !self
                .live_ports
                .get(f.port as usize)
                .copied()
                .unwrap_or(false)
            || !self
                .live_services
                .get(f.service as usize)
                .copied()
                .unwrap_or(false)
        {
            return;
        }
        let o = &mut self.out;
        o.push(f.orig.proto);
        put_tuple(o, &f.orig);
        put_tuple(o, &f.reply);
        o.push(tcp_code(f.tcp));
        o.push(u8::from(f.fin_orig) | u8::from(f.fin_reply) << 1 | u8::from(f.replied) << 2);
        o.extend_from_slice(&f.port.to_le_bytes());
        o.extend_from_slice(&f.service.to_le_bytes());
        o.extend_from_slice(&ms_left(f.expires, self.now).to_le_bytes());
        self.count += 1;
    }

    fn close_section(&mut self) {
        let at = self.count_at;
        self.out[at..at + 4].copy_from_slice(&self.count.to_le_bytes());
    }

    /// Add an affinity entry (after all flows).
    pub fn affinity(&mut self, s: &Sticky) {
        if !self.in_affinity {
            self.close_section();
            self.count_at = self.out.len();
            self.out.extend_from_slice(&0u32.to_le_bytes());
            self.count = 0;
            self.in_affinity = true;
        }
        if s.expires <= self.now {
            return;
        }
        let o = &mut self.out;
        o.extend_from_slice(&s.key.vip.octets());
        o.push(s.key.proto);
        o.extend_from_slice(&s.key.port.to_le_bytes());
        o.extend_from_slice(&s.key.client.octets());
        o.extend_from_slice(&s.backend.0.octets());
        o.extend_from_slice(&s.backend.1.to_le_bytes());
        o.extend_from_slice(&ms_left(s.expires, self.now).to_le_bytes());
        self.count += 1;
    }

    pub fn finish(mut self) -> Vec<u8> {
        if !self.in_affinity {
            self.close_section();
            self.out.extend_from_slice(&0u32.to_le_bytes());
        } else {
            self.close_section();
        }
        self.out
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

const SHORT: RestoreError = RestoreError::Parse("truncated");

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RestoreError> {
        let s = self.b.get(self.at..self.at + n).ok_or(SHORT)?;
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, RestoreError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, RestoreError> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, RestoreError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn ip(&mut self) -> Result<Ipv4Addr, RestoreError> {
        let s = self.take(4)?;
        Ok(Ipv4Addr::new(s[0], s[1], s[2], s[3]))
    }
    fn names(&mut self) -> Result<Vec<String>, RestoreError> {
        let n = self.u32()? as usize;
        // Each name takes at least 2 bytes: a count beyond the file is bad.
        if n > (self.b.len() - self.at) / 2 {
            return Err(SHORT);
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let len = usize::from(self.u16()?);
            let s = std::str::from_utf8(self.take(len)?)
                .map_err(|_| RestoreError::Parse("a name is not UTF-8"))?;
            v.push(s.to_string());
        }
        Ok(v)
    }
    fn tuple(&mut self, proto: u8) -> Result<Tuple, RestoreError> {
        Ok(Tuple {
            proto,
            src: self.ip()?,
            sport: self.u16()?,
            dst: self.ip()?,
            dport: self.u16()?,
        })
    }
    fn count(&mut self, record: usize) -> Result<usize, RestoreError> {
        let n = self.u32()? as usize;
        if n > (self.b.len() - self.at) / record {
            return Err(SHORT);
        }
        Ok(n)
    }
}

/// Parse a snapshot. Records are checked for shape only (known TCP state,
/// name indexes in range); the caller decides what makes sense to load.
pub fn decode(bytes: &[u8]) -> Result<Decoded, RestoreError> {
    let mut r = Reader { b: bytes, at: 0 };
    if r.take(MAGIC.len()).ok() != Some(&MAGIC[..]) {
        return Err(RestoreError::Parse("not a lab flow snapshot"));
    }
    let version = r.u32()?;
    if version != VERSION {
        return Err(RestoreError::Version(version));
    }
    let ports = r.names()?;
    let services = r.names()?;
    let n = r.count(FLOW_RECORD)?;
    let mut flows = Vec::with_capacity(n);
    for _ in 0..n {
        let proto = r.u8()?;
        let orig = r.tuple(proto)?;
        let reply = r.tuple(proto)?;
        let tcp = tcp_state(r.u8()?).ok_or(RestoreError::Parse("unknown TCP state"))?;
        let flags = r.u8()?;
        let port = r.u32()?;
        let service = r.u32()?;
        let left = Duration::from_millis(r.u32()?.into());
        if port as usize >= ports.len() || service as usize >= services.len() {
            return Err(RestoreError::Parse("name index out of range"));
        }
        flows.push(SavedFlow {
            orig,
            reply,
            port,
            service,
            tcp,
            fin_orig: flags & 1 != 0,
            fin_reply: flags & 2 != 0,
            replied: flags & 4 != 0,
            left,
        });
    }
    let n = r.count(AFFINITY_RECORD)?;
    let mut affinity = Vec::with_capacity(n);
    for _ in 0..n {
        let vip = r.ip()?;
        let proto = r.u8()?;
        let port = r.u16()?;
        let client = r.ip()?;
        let backend = (r.ip()?, r.u16()?);
        let left = Duration::from_millis(r.u32()?.into());
        affinity.push(SavedAffinity {
            key: AffinityKey {
                vip,
                proto,
                port,
                client,
            },
            backend,
            left,
        });
    }
    if r.at != bytes.len() {
        return Err(RestoreError::Parse("trailing bytes"));
    }
    Ok(Decoded {
        ports,
        services,
        flows,
        affinity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(a: u8, p: u16, b: u8, q: u16) -> Tuple {
        Tuple {
            proto: 6,
            src: Ipv4Addr::new(10, 244, 0, a),
            sport: p,
            dst: Ipv4Addr::new(10, 96, 0, b),
            dport: q,
        }
    }

    #[test]
    fn round_trip_and_size() {
        let now = Duration::from_secs(50);
        let f = Flow {
            orig: t(2, 40000, 20, 80),
            reply: t(3, 8080, 2, 40000),
            port: 1,
            service: 0,
            tcp: Some(TcpState::FinWait),
            fin_orig: true,
            fin_reply: false,
            replied: true,
            expires: now + Duration::from_millis(1234),
            fault: 0,
            stats: Default::default(),
        };
        let dead = Flow { expires: now, ..f };
        let s = Sticky {
            key: AffinityKey {
                vip: Ipv4Addr::new(10, 96, 0, 20),
                proto: 17,
                port: 53,
                client: Ipv4Addr::new(10, 244, 0, 2),
            },
            backend: (Ipv4Addr::new(10, 244, 0, 3), 5353),
            expires: now + Duration::from_secs(10),
        };
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut e = Encoder::new(&names(&["a/b:x", "a/b:y"]), &names(&["a/b"]), now, 2);
        e.flow(&f);
        e.flow(&dead);
        let header = 8 + 4 + 4 + 2 * (2 + 5) + 4 + 2 + 3 + 4;
        e.affinity(&s);
        let bytes = e.finish();
        assert_eq!(bytes.len(), header + FLOW_RECORD + 4 + AFFINITY_RECORD);
        let d = decode(&bytes).unwrap();
        assert_eq!(d.ports, ["a/b:x", "a/b:y"]);
        assert_eq!(d.services, ["a/b"]);
        assert_eq!(d.flows.len(), 1, "expired flows are not written");
        let g = d.flows[0];
        assert_eq!(
            (g.orig, g.reply, g.port, g.service),
            (f.orig, f.reply, 1, 0)
        );
        assert_eq!(g.tcp, Some(TcpState::FinWait));
        assert_eq!((g.fin_orig, g.fin_reply, g.replied), (true, false, true));
        assert_eq!(g.left, Duration::from_millis(1234));
        assert_eq!(d.affinity.len(), 1);
        assert_eq!(d.affinity[0].key, s.key);
        assert_eq!(d.affinity[0].backend, s.backend);
        assert_eq!(d.affinity[0].left, Duration::from_secs(10));
        // Every truncation and any trailing byte is an error, never a panic.
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode(&long).is_err());
        let mut v = bytes.clone();
        v[8] = 9;
        assert_eq!(decode(&v).unwrap_err(), RestoreError::Version(9));
        // An empty snapshot.
        let e = Encoder::new(&[], &[], now, 0).finish();
        let d = decode(&e).unwrap();
        assert!(d.flows.is_empty() && d.affinity.is_empty());
    }
}
