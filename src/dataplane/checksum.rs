//! Internet checksums: full computation, RFC 1624 incremental updates of a
//! complemented checksum field, and the update of a *partial* (pseudo-header
//! only, not complemented) sum left by checksum offload.

/// One's complement sum of `data` (big-endian 16-bit words), folded, not
/// complemented, added to `initial`.
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc = initial as u64;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u64) << 8;
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

fn fold(mut x: u32) -> u16 {
    while x > 0xffff {
        x = (x & 0xffff) + (x >> 16);
    }
    x as u16
}

/// RFC 1624 (eqn. 3): a complemented checksum `hc` after one 16-bit word
/// changed from `old` to `new`: `HC' = ~(~HC + ~m + m')`.
pub fn update16(hc: u16, old: u16, new: u16) -> u16 {
    !fold(u32::from(!hc) + u32::from(!old) + u32::from(new))
}

/// [`update16`] for a 32-bit field (an IPv4 address).
pub fn update32(hc: u16, old: u32, new: u32) -> u16 {
    let hc = update16(hc, (old >> 16) as u16, (new >> 16) as u16);
    update16(hc, old as u16, new as u16)
}

/// A partial (pseudo-header) sum as left in the L4 checksum field under
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: `S' = S + ~m + m'`, no final complement.
pub fn partial_update32(s: u16, old: u32, new: u32) -> u16 {
    let s = fold(u32::from(s) + u32::from(!((old >> 16) as u16)) + ((new >> 16) & 0xffff));
    fold(u32::from(s) + u32::from(!(old as u16)) + (new & 0xffff))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_matches_full() {
        // An IPv4 header with its checksum.
        let mut h = [
            0x45u8, 0, 0, 60, 0x1c, 0x46, 0x40, 0, 64, 6, 0, 0, 10, 244, 0, 2, 10, 96, 0, 20,
        ];
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&h), 0);
        let old = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
        let new = u32::from_be_bytes([10, 244, 3, 77]);
        let upd = update32(c, old, new);
        h[16..20].copy_from_slice(&new.to_be_bytes());
        h[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(upd, checksum(&h));
    }

    #[test]
    fn partial_update_matches_recomputed_pseudo_sum() {
        let pseudo = |src: [u8; 4], dst: [u8; 4]| {
            let mut p = Vec::new();
            p.extend_from_slice(&src);
            p.extend_from_slice(&dst);
            p.extend_from_slice(&[0, 6, 0, 40]);
            sum(&p, 0) as u16
        };
        let a = pseudo([10, 244, 0, 2], [10, 96, 0, 20]);
        let b = pseudo([10, 244, 0, 2], [10, 244, 9, 9]);
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
    }
}
