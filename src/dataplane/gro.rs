//! Coalescing of UDP trains for the TUN write (a software GRO): consecutive
//! outgoing datagrams of one flow, all of one payload size (the last may be
//! shorter), are written as one `VIRTIO_NET_HDR_GSO_UDP_L4` super-packet.
//! The kernel then builds one skb and forwards it once; the receiving
//! socket (or a device without UDP segmentation offload) splits it back
//! into the original datagrams, each with its own length and checksum.
//!
//! Only plain datagrams are taken: IPv4 without options, not a fragment,
//! no GSO already, the checksum left partial (`NEEDS_CSUM`) as a local
//! sender's offload leaves it, so the super-packet needs only its
//! pseudo-header sum. Everything else is written as it is. The IP
//! identification of the segments is the first datagram's, counted up (the
//! kernel's segmentation does that), not the original ones.
//!
//! Pure functions over the packet bytes (virtio-net header first).

use super::checksum::{checksum, pseudo_header};
use super::vnet::{self, VnetHdr};

/// The kernel refuses UDP GSO packets of more segments than this
/// (`UDP_MAX_SEGMENTS`).
pub const MAX_SEGMENTS: u16 = 64;
const IP: usize = vnet::LEN;
const UDP: usize = IP + 20;
const DATA: usize = UDP + 8;

/// A super-packet being built in a buffer: the first datagram's headers,
/// then the payloads appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Train {
    /// Bytes used in the head's buffer (virtio-net header included).
    pub len: usize,
    /// Payload bytes of every segment but the last.
    seg: usize,
    count: u16,
    /// A shorter datagram was appended: nothing may follow.
    closed: bool,
}

/// The payload length of `pkt` if it is a datagram this module coalesces.
fn candidate(pkt: &[u8]) -> Option<usize> {
    let h = VnetHdr::parse(pkt)?;
    if h.is_gso() || !h.needs_csum() || h.csum_start != 20 || h.csum_offset != 6 {
        return None;
    }
    let ip = pkt.get(IP..DATA)?;
    let tot = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let frag = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff; // MF + offset
    let udp_len = usize::from(u16::from_be_bytes([ip[24], ip[25]]));
    if ip[0] != 0x45 || ip[9] != 17 || frag != 0 || tot != pkt.len() - IP || udp_len != tot - 20 {
        return None;
    }
    let payload = udp_len - 8;
    (payload > 0).then_some(payload)
}

/// Start a train with `pkt` (the head, left in place); `None` if it is not
/// a datagram that can be coalesced.
pub fn start(pkt: &[u8]) -> Option<Train> {
    let seg = candidate(pkt)?;
    Some(Train {
        len: pkt.len(),
        seg,
        count: 1,
        closed: false,
    })
}

/// Append `next`'s payload to the train in `head` (whose buffer is `head`,
/// `t.len` bytes used) if it is the same flow with the same IP header and
/// fits; false (nothing changed) otherwise.
pub fn append(t: &mut Train, head: &mut [u8], next: &[u8]) -> bool {
    let Some(p) = candidate(next) else {
        return false;
    };
    let total = t.len - IP + p;
    if t.closed || p > t.seg || t.count >= MAX_SEGMENTS || total > 65_535 || t.len + p > head.len()
    {
        return false;
    }
    let (a, b) = (&head[IP..DATA], &next[IP..DATA]);
    // TOS, DF, TTL, protocol, addresses, ports: equal (not id, length, sums).
    let same =
        a[1] == b[1] && a[6..10] == b[6..10] && a[12..24] == b[12..24] && next[..2] == head[..2];
    if !same {
        return false;
    }
    head[t.len..t.len + p].copy_from_slice(&next[DATA..DATA + p]);
    t.len += p;
    t.count += 1;
    t.closed = p < t.seg;
    true
}

/// Write the headers of a train of more than one datagram: the GSO header,
/// IP length and checksum, UDP length and its pseudo-header sum. A train
/// of one is left exactly as it was read. Returns the bytes to write.
pub fn finish(t: &Train, head: &mut [u8]) -> usize {
    if t.count < 2 {
        return t.len;
    }
    let ip_len = (t.len - IP) as u16;
    let udp_len = ip_len - 20;
    VnetHdr {
        flags: vnet::F_NEEDS_CSUM,
        gso_type: vnet::GSO_UDP_L4,
        hdr_len: 28,
        gso_size: t.seg as u16,
        csum_start: 20,
        csum_offset: 6,
    }
    .write(head);
    let ip = &mut head[IP..UDP];
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[10..12].copy_from_slice(&[0, 0]);
    let c = checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let src: [u8; 4] = ip[12..16].try_into().unwrap_or_default();
    let dst: [u8; 4] = ip[16..20].try_into().unwrap_or_default();
    let udp = &mut head[UDP..DATA];
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp[6..8].copy_from_slice(&pseudo_header(src, dst, 17, udp_len).to_be_bytes());
    t.len
}

/// How many datagrams the train holds.
pub fn segments(t: &Train) -> u16 {
    t.count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::checksum::sum;

    /// A datagram as a local sender's offload hands it over: partial sum.
    fn dgram(sport: u16, payload: &[u8], id: u16) -> Vec<u8> {
        let mut p = vec![0u8; DATA + payload.len()];
        VnetHdr {
            flags: vnet::F_NEEDS_CSUM,
            csum_start: 20,
            csum_offset: 6,
            ..Default::default()
        }
        .write(&mut p);
        let tot = (20 + 8 + payload.len()) as u16;
        let ip = &mut p[IP..UDP];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&tot.to_be_bytes());
        ip[4..6].copy_from_slice(&id.to_be_bytes());
        ip[6] = 0x40; // DF
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[10, 244, 0, 2]);
        ip[16..20].copy_from_slice(&[10, 244, 0, 3]);
        let c = checksum(ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let udp = &mut p[UDP..DATA];
        udp[0..2].copy_from_slice(&sport.to_be_bytes());
        udp[2..4].copy_from_slice(&5201u16.to_be_bytes());
        udp[4..6].copy_from_slice(&(tot - 20).to_be_bytes());
        let ps = pseudo_header([10, 244, 0, 2], [10, 244, 0, 3], 17, tot - 20);
        udp[6..8].copy_from_slice(&ps.to_be_bytes());
        p[DATA..].copy_from_slice(payload);
        p
    }

    fn buf(first: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 65_600];
        b[..first.len()].copy_from_slice(first);
        b
    }

    #[test]
    fn a_train_becomes_one_udp_gso_packet_with_consistent_headers() {
        let a = dgram(4000, &[1; 64], 7);
        let mut head = buf(&a);
        let mut t = start(&a).unwrap();
        assert!(append(&mut t, &mut head, &dgram(4000, &[2; 64], 8)));
        assert!(append(&mut t, &mut head, &dgram(4000, &[3; 10], 9)));
        // After a short one nothing more joins.
        assert!(!append(&mut t, &mut head, &dgram(4000, &[4; 10], 10)));
        assert_eq!(segments(&t), 3);
        let n = finish(&t, &mut head);
        assert_eq!(n, DATA + 64 + 64 + 10);
        let h = VnetHdr::parse(&head).unwrap();
        assert_eq!(
            (h.gso_type, h.gso_size, h.hdr_len),
            (vnet::GSO_UDP_L4, 64, 28)
        );
        assert!(h.needs_csum());
        assert_eq!(h.segments(n - IP), 3);
        let ip = &head[IP..UDP];
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]) as usize, n - IP);
        assert_eq!(sum(ip, 0), 0xffff, "IP header checksum verifies");
        let udp_len = u16::from_be_bytes([head[UDP + 4], head[UDP + 5]]);
        assert_eq!(udp_len as usize, n - UDP);
        // The partial sum: completed over the UDP header and data it gives
        // a checksum that verifies with the pseudo-header.
        let part = u16::from_be_bytes([head[UDP + 6], head[UDP + 7]]);
        assert_eq!(
            part,
            pseudo_header([10, 244, 0, 2], [10, 244, 0, 3], 17, udp_len)
        );
        assert_eq!(&head[DATA..DATA + 64], &[1; 64]);
        assert_eq!(&head[DATA + 64..DATA + 128], &[2; 64]);
        assert_eq!(&head[DATA + 128..n], &[3; 10]);
    }

    #[test]
    fn other_flows_larger_datagrams_and_odd_packets_do_not_join() {
        let a = dgram(4000, &[1; 64], 1);
        let mut head = buf(&a);
        let mut t = start(&a).unwrap();
        assert!(!append(&mut t, &mut head, &dgram(4001, &[1; 64], 2)));
        assert!(!append(&mut t, &mut head, &dgram(4000, &[1; 65], 2)));
        let mut full = dgram(4000, &[1; 64], 2);
        full[0] = 0; // checksum complete: not taken
        assert!(!append(&mut t, &mut head, &full));
        let mut frag = dgram(4000, &[1; 64], 2);
        frag[IP + 6] = 0x20; // MF
        assert!(!append(&mut t, &mut head, &frag));
        assert!(start(&frag).is_none());
        let mut ttl = dgram(4000, &[1; 64], 2);
        ttl[IP + 8] = 63;
        assert!(!append(&mut t, &mut head, &ttl));
        assert!(start(&dgram(4000, &[], 1)).is_none(), "empty payload");
        assert!(start(&a[..DATA - 1]).is_none());
        // A train of one is written as it was read.
        let before = head.clone();
        assert_eq!(finish(&t, &mut head), a.len());
        assert_eq!(head, before);
    }

    #[test]
    fn a_train_stops_at_the_segment_and_size_limits() {
        let a = dgram(4000, &[1; 1400], 1);
        let mut head = buf(&a);
        let mut t = start(&a).unwrap();
        let mut n = 1;
        while append(&mut t, &mut head, &dgram(4000, &[1; 1400], 1)) {
            n += 1;
        }
        assert_eq!(n, 46, "46 segments of 1400 bytes fit in 65535 with headers");
        let b = dgram(4000, &[1; 8], 1);
        let mut head = buf(&b);
        let mut t = start(&b).unwrap();
        let mut n = 1;
        while append(&mut t, &mut head, &dgram(4000, &[1; 8], 1)) {
            n += 1;
        }
        assert_eq!(n, MAX_SEGMENTS);
    }
}
