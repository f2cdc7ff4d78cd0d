//! Test frames: a UDP/IPv4 Ethernet frame with correct checksums, as ixy's
//! pktgen sends, with a sequence number in its last four bytes.

/// Source MAC of generated frames (locally administered).
pub const SRC_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
/// Destination MAC of generated frames (locally administered).
pub const DST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];

/// The one's-complement sum of `data` as 16-bit big-endian words.
fn ones_complement_sum(data: &[u8], mut sum: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// A UDP/IPv4 frame of `len` bytes (60..=1514, without FCS) from 10.0.0.1:
/// 4321 to 10.0.0.2:1234, payload bytes counting up, checksums filled in.
pub fn udp_frame(len: usize, src_mac: [u8; 6], dst_mac: [u8; 6]) -> Vec<u8> {
    let len = len.clamp(60, 1514);
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (len - 14) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
    let csum = fold(ones_complement_sum(ip, 0));
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    let udp_len = ip_len - 20;
    f[34..36].copy_from_slice(&4321u16.to_be_bytes());
    f[36..38].copy_from_slice(&1234u16.to_be_bytes());
    f[38..40].copy_from_slice(&udp_len.to_be_bytes());
    for (i, b) in f[42..].iter_mut().enumerate() {
        *b = i as u8;
    }
    // UDP checksum 0: "not computed", legal for IPv4, and it keeps the
    // sequence number writable without recomputing anything.
    f
}

/// Writes `seq` into the last four bytes of `frame`.
pub fn set_sequence(frame: &mut [u8], seq: u32) {
    let n = frame.len();
    if n >= 4 {
        frame[n - 4..].copy_from_slice(&seq.to_be_bytes());
    }
}

/// The IPv4 header checksum of `header` verifies (sums to 0xFFFF).
pub fn ipv4_checksum_ok(header: &[u8]) -> bool {
    fold(ones_complement_sum(header, 0)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_asked_length_and_a_valid_ip_header() {
        for len in [0, 60, 61, 128, 1514, 9000] {
            let f = udp_frame(len, SRC_MAC, DST_MAC);
            assert_eq!(f.len(), len.clamp(60, 1514));
            assert!(ipv4_checksum_ok(&f[14..34]));
            assert_eq!(usize::from(u16::from_be_bytes([f[16], f[17]])), f.len() - 14);
        }
    }

    #[test]
    fn sequence_goes_in_the_last_four_bytes() {
        let mut f = udp_frame(60, SRC_MAC, DST_MAC);
        set_sequence(&mut f, 0x01020304);
        assert_eq!(&f[56..], &[1, 2, 3, 4]);
    }
}
