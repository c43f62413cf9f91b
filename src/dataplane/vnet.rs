//! The 10-byte `virtio_net_hdr` that precedes every packet on a TUN opened
//! with `IFF_VNET_HDR` (no `num_buffers`; little-endian, as on every host lab
//! runs on — a big-endian host would need `TUNSETVNETLE`).

/// Length of the header on the wire.
pub const LEN: usize = 10;
/// The L4 checksum field holds only the pseudo-header sum; the kernel (or
/// the NIC) completes it over `csum_start..` and stores it at
/// `csum_start + csum_offset`.
pub const F_NEEDS_CSUM: u8 = 1;
/// The checksum was already verified (receive side only).
pub const F_DATA_VALID: u8 = 2;
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
pub const GSO_UDP: u8 = 3;
pub const GSO_TCPV6: u8 = 4;
pub const GSO_UDP_L4: u8 = 5;
pub const GSO_ECN: u8 = 0x80;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    /// Length of the headers (L2 absent on a TUN, so IP + L4).
    pub hdr_len: u16,
    /// Segment payload size for GSO super-packets.
    pub gso_size: u16,
    /// Offset of the L4 header from the start of the IP packet.
    pub csum_start: u16,
    /// Offset of the checksum field inside the L4 header.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Parse the first [`LEN`] bytes of `b`; `None` if `b` is shorter.
    pub fn parse(b: &[u8]) -> Option<VnetHdr> {
        let b: &[u8; LEN] = b.get(..LEN)?.try_into().ok()?;
        let u = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        })
    }

    /// Write the header into the first [`LEN`] bytes of `b`; returns false
    /// (writing nothing) if `b` is shorter.
    pub fn write(&self, b: &mut [u8]) -> bool {
        let Some(b) = b.get_mut(..LEN) else {
            return false;
        };
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        true
    }

    pub fn needs_csum(&self) -> bool {
        self.flags & F_NEEDS_CSUM != 0
    }

    pub fn is_gso(&self) -> bool {
        self.gso_type & !GSO_ECN != GSO_NONE
    }

    /// How many wire packets this (possibly GSO) packet of `ip_len` bytes
    /// stands for; 1 for anything that is not a well-formed super-packet.
    pub fn segments(&self, ip_len: usize) -> u64 {
        if !self.is_gso() || self.gso_size == 0 {
            return 1;
        }
        let payload = ip_len.saturating_sub(usize::from(self.hdr_len));
        payload.div_ceil(usize::from(self.gso_size)).max(1) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 52,
            gso_size: 1448,
            csum_start: 20,
            csum_offset: 16,
        };
        let mut b = [0u8; LEN];
        assert!(h.write(&mut b));
        assert_eq!(b, [1, 1, 52, 0, 0xa8, 0x05, 20, 0, 16, 0]);
        assert_eq!(VnetHdr::parse(&b), Some(h));
        assert!(VnetHdr::parse(&b[..9]).is_none());
        assert!(!h.write(&mut [0u8; 9]));
        assert!(h.needs_csum() && h.is_gso());
        assert_eq!(h.segments(52 + 1448 * 3 + 1), 4);
        assert_eq!(VnetHdr::default().segments(1500), 1);
    }
}
