//! Internet checksums (RFC 1071): full computation, RFC 1624 incremental
//! updates of a complemented checksum field, and the update of a *partial*
//! (pseudo-header only, not complemented) sum that checksum offload leaves
//! in the TCP/UDP checksum field under `VIRTIO_NET_HDR_F_NEEDS_CSUM`.
//!
//! All 16-bit words are big-endian (network order). Incremental updates are
//! only valid for words at even offsets from the start of the checksummed
//! region, which holds for every field the NAT touches.

/// Fold a 32-bit one's complement accumulator to 16 bits.
#[inline]
pub fn fold(mut x: u32) -> u16 {
    x = (x & 0xffff) + (x >> 16);
    x = (x & 0xffff) + (x >> 16);
    x as u16
}

/// One's complement sum of `data` (big-endian 16-bit words, an odd last byte
/// padded with zero), added to `initial`, folded, not complemented.
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc = u64::from(initial);
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u32
}

/// The checksum to store for `data` (complement of the folded sum).
pub fn checksum(data: &[u8]) -> u16 {
    !(sum(data, 0) as u16)
}

/// One's complement sum of the IPv4 pseudo-header (not complemented).
pub fn pseudo_header(src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: u16) -> u16 {
    let s = u32::from(u16::from_be_bytes([src[0], src[1]]))
        + u32::from(u16::from_be_bytes([src[2], src[3]]))
        + u32::from(u16::from_be_bytes([dst[0], dst[1]]))
        + u32::from(u16::from_be_bytes([dst[2], dst[3]]))
        + u32::from(proto)
        + u32::from(l4_len);
    fold(s)
}

/// RFC 1624 eqn. 3: a complemented checksum `hc` after one 16-bit word
/// changed from `old` to `new`: `HC' = ~(~HC + ~m + m')`.
#[inline]
pub fn update16(hc: u16, old: u16, new: u16) -> u16 {
    !fold(u32::from(!hc) + u32::from(!old) + u32::from(new))
}

/// [`update16`] for a 32-bit field (an IPv4 address): both halves at once.
#[inline]
pub fn update32(hc: u16, old: u32, new: u32) -> u16 {
    let s = u32::from(!hc)
        + u32::from(!(old >> 16) as u16)
        + u32::from(!old as u16)
        + (new >> 16)
        + (new & 0xffff);
    !fold(s)
}

/// A partial (pseudo-header) sum `s` as left in the L4 checksum field under
/// `NEEDS_CSUM`, after an address changed from `old` to `new`:
/// `S' = S + ~m + m'` with no final complement. Ports need no update: the
/// kernel (or NIC) sums the whole L4 header when it completes the checksum.
#[inline]
pub fn partial_update32(s: u16, old: u32, new: u32) -> u16 {
    let x = u32::from(s)
        + u32::from(!(old >> 16) as u16)
        + u32::from(!old as u16)
        + (new >> 16)
        + (new & 0xffff);
    fold(x)
}

/// A UDP checksum that computes to zero is sent as `0xffff` (RFC 768); zero
/// on the wire means "no checksum".
#[inline]
pub fn udp_nonzero(c: u16) -> u16 {
    if c == 0 { 0xffff } else { c }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip_header(dst: [u8; 4]) -> [u8; 20] {
        let mut h = [
            0x45u8, 0, 0, 20, 0x1c, 0x46, 0x40, 0, 64, 6, 0, 0, 10, 244, 0, 2, 0, 0, 0, 0,
        ];
        h[16..20].copy_from_slice(&dst);
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    #[test]
    fn incremental_matches_full_and_smoltcp() {
        let h = ip_header([10, 96, 0, 20]);
        assert_eq!(checksum(&h), 0);
        let c = u16::from_be_bytes([h[10], h[11]]);
        for new in [
            [10, 244, 3, 77],
            [255, 255, 255, 255],
            [0, 0, 0, 0],
            [1, 2, 3, 4],
        ] {
            let old = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
            let upd = update32(c, old, u32::from_be_bytes(new));
            let mut h2 = h;
            h2[16..20].copy_from_slice(&new);
            h2[10..12].copy_from_slice(&upd.to_be_bytes());
            let p = smoltcp::wire::Ipv4Packet::new_checked(&h2[..]).unwrap();
            assert!(p.verify_checksum(), "{new:?}");
        }
        // The 32-bit update equals two 16-bit ones.
        let old = u32::from_be_bytes([10, 96, 0, 20]);
        let new = u32::from_be_bytes([10, 244, 9, 9]);
        let a = update32(c, old, new);
        let b = update16(
            update16(c, (old >> 16) as u16, (new >> 16) as u16),
            old as u16,
            new as u16,
        );
        assert_eq!(a, b);
    }

    #[test]
    fn partial_update_matches_recomputed_pseudo_sum() {
        let a = pseudo_header([10, 244, 0, 2], [10, 96, 0, 20], 6, 40);
        let b = pseudo_header([10, 244, 0, 2], [10, 244, 9, 9], 6, 40);
        let upd = partial_update32(
            a,
            u32::from_be_bytes([10, 96, 0, 20]),
            u32::from_be_bytes([10, 244, 9, 9]),
        );
        // Equal as one's complement numbers (0 and 0xffff are the same).
        assert!(
            upd == b || (upd == 0xffff && b == 0) || (upd == 0 && b == 0xffff),
            "{upd:x} {b:x}"
        );
        // Matches the generic sum as well.
        let p = [10, 244, 0, 2, 10, 244, 9, 9, 0, 6, 0, 40];
        assert_eq!(sum(&p, 0) as u16, b);
    }

    #[test]
    fn odd_lengths_and_udp_zero() {
        assert_eq!(sum(&[0xab], 0), 0xab00);
        assert_eq!(sum(&[0xff, 0xff, 0xff, 0xff], 0), 0xffff);
        assert_eq!(udp_nonzero(0), 0xffff);
        assert_eq!(udp_nonzero(7), 7);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// One's-complement sums have two zeros (0x0000 and 0xffff).
        fn same(a: u16, b: u16) -> bool {
            a == b || (a | b == 0xffff && (a == 0 || b == 0))
        }

        proptest! {
            /// Changing one 16-bit word: the RFC 1624 update equals the
            /// checksum recomputed over the whole buffer.
            #[test]
            fn update16_equals_a_full_recompute(
                mut data in proptest::collection::vec(any::<u8>(), 2..128),
                at in any::<prop::sample::Index>(),
                new in any::<u16>(),
            ) {
                if data.len() % 2 == 1 {
                    data.pop();
                }
                let i = at.index(data.len() / 2) * 2;
                let before = checksum(&data);
                let old = u16::from_be_bytes([data[i], data[i + 1]]);
                data[i..i + 2].copy_from_slice(&new.to_be_bytes());
                let full = checksum(&data);
                let inc = update16(before, old, new);
                prop_assert!(same(inc, full), "incremental {inc:#06x} vs full {full:#06x}");
            }

            /// Changing an address (32 bits at a 4-byte offset), as the NAT
            /// does in the IP header and the L4 pseudo header.
            #[test]
            fn update32_equals_a_full_recompute(
                words in proptest::collection::vec(any::<u32>(), 1..32),
                at in any::<prop::sample::Index>(),
                new in any::<u32>(),
            ) {
                let mut data: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
                let i = at.index(words.len()) * 4;
                let before = checksum(&data);
                let old = u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
                data[i..i + 4].copy_from_slice(&new.to_be_bytes());
                let full = checksum(&data);
                let inc = update32(before, old, new);
                prop_assert!(same(inc, full), "incremental {inc:#06x} vs full {full:#06x}");
            }

            /// Under NEEDS_CSUM the field holds the pseudo-header sum: after
            /// a destination change it equals the sum recomputed with the new
            /// address.
            #[test]
            fn partial_update_equals_the_recomputed_pseudo_sum(
                src in any::<[u8; 4]>(),
                dst in any::<[u8; 4]>(),
                new_dst in any::<[u8; 4]>(),
                proto in prop_oneof![Just(6u8), Just(17u8)],
                len in 8u16..65_000,
            ) {
                let before = pseudo_header(src, dst, proto, len);
                let after = pseudo_header(src, new_dst, proto, len);
                let inc = partial_update32(
                    before,
                    u32::from_be_bytes(dst),
                    u32::from_be_bytes(new_dst),
                );
                prop_assert!(same(inc, after), "incremental {inc:#06x} vs full {after:#06x}");
            }
        }
    }
}
