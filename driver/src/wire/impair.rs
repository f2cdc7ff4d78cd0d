//! Seeded impairments: what a link does to the frames it carries.
//!
//! An [`Impairer`] decides the fate of each frame from its own ChaCha8
//! stream. It draws the same number of random values for every frame,
//! whatever the probabilities, so the decision of one impairment for frame
//! `n` depends only on the seed, the direction and `n`: turning on
//! corruption does not change which frames are lost. A failing test that
//! prints its seed therefore replays exactly.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// Length of the Ethernet header that corruption never touches.
pub const ETHERNET_HEADER_LEN: usize = 14;

/// How long a reordered frame may be held back when no later frame comes to
/// overtake it; after this it is delivered anyway, so reordering never turns
/// into loss on a quiet link.
pub const REORDER_MAX_HOLD: Duration = Duration::from_millis(1);

/// The most frames that may overtake a reordered one (at least one does).
pub const REORDER_MAX_DEPTH: u32 = 3;

/// Per-frame impairment probabilities, each in `0.0..=1.0`, and the seed
/// that makes them reproducible.
///
/// - `loss`: the frame vanishes on the wire (it still used its wire time).
/// - `duplicate`: the receiver gets the frame twice, back to back.
/// - `reorder`: the frame is held back and delivered after the next
///   1..=[`REORDER_MAX_DEPTH`] frames (or after [`REORDER_MAX_HOLD`] if no
///   frame overtakes it).
/// - `corrupt`: one bit of one byte **after the 14-byte Ethernet header** is
///   flipped. This models corruption that the Ethernet FCS did not catch (a
///   faulty middlebox or switch that recomputed the FCS over bad data), so the
///   IPv4, TCP and UDP checksums are what must catch it. Corruption inside the
///   Ethernet header would be caught by the FCS on a real link, which makes
///   it a loss, and that is modelled by `loss`.
///
/// Values outside `0.0..=1.0` are clamped; NaN counts as zero.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairments {
    /// Probability that a frame is lost.
    pub loss: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Probability that a frame is held back and overtaken.
    pub reorder: f64,
    /// Probability that one bit after the Ethernet header is flipped.
    pub corrupt: f64,
    /// Seed of the random streams (one stream per direction).
    pub seed: u64,
}

impl Impairments {
    /// No impairments: every frame arrives once, intact and in order.
    pub const fn none() -> Impairments {
        Impairments { loss: 0.0, duplicate: 0.0, reorder: 0.0, corrupt: 0.0, seed: 0 }
    }

    /// True when no impairment can ever happen.
    pub fn is_none(&self) -> bool {
        let s = self.sanitised();
        s.loss == 0.0 && s.duplicate == 0.0 && s.reorder == 0.0 && s.corrupt == 0.0
    }

    fn sanitised(&self) -> Impairments {
        fn clamp(p: f64) -> f64 {
            if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) }
        }
        Impairments {
            loss: clamp(self.loss),
            duplicate: clamp(self.duplicate),
            reorder: clamp(self.reorder),
            corrupt: clamp(self.corrupt),
            seed: self.seed,
        }
    }
}

impl Default for Impairments {
    fn default() -> Self {
        Impairments::none()
    }
}

/// What happens to one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fate {
    /// The frame is lost.
    pub lost: bool,
    /// A second copy is delivered right after the first.
    pub duplicated: bool,
    /// The frame is held back until this many later frames have passed.
    pub overtaken_by: Option<u32>,
    /// Flip bit `.1` (0..8) of byte `.0` (at or after [`ETHERNET_HEADER_LEN`]).
    pub corrupt_at: Option<(usize, u8)>,
}

/// Decides frame fates for one direction of a link from a seeded stream.
#[derive(Debug, Clone)]
pub struct Impairer {
    p: Impairments,
    rng: ChaCha8Rng,
}

impl Impairer {
    /// An impairer for one direction: ChaCha8 seeded from `p.seed`, on the
    /// stream numbered `direction`, so each direction has an independent
    /// sequence that does not depend on how the two interleave.
    pub fn new(p: &Impairments, direction: u64) -> Impairer {
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        rng.set_stream(direction);
        Impairer { p: p.sanitised(), rng }
    }

    /// The fate of the next frame, `frame_len` bytes long.
    pub fn decide(&mut self, frame_len: usize) -> Fate {
        // Always the same six draws per frame, see the module docs.
        let lost = self.rng.random::<f64>() < self.p.loss;
        let duplicated = self.rng.random::<f64>() < self.p.duplicate;
        let reordered = self.rng.random::<f64>() < self.p.reorder;
        let corrupted = self.rng.random::<f64>() < self.p.corrupt;
        let depth_draw = self.rng.next_u64();
        let where_draw = self.rng.next_u64();

        let overtaken_by = reordered.then(|| 1 + (depth_draw % u64::from(REORDER_MAX_DEPTH)) as u32);
        let payload = frame_len.saturating_sub(ETHERNET_HEADER_LEN);
        let corrupt_at = (corrupted && payload > 0).then(|| {
            // Multiply-shift maps the draw onto 0..payload; the bias is
            // below 2^-48 for any frame length.
            let offset = ((u128::from(where_draw >> 3) * payload as u128) >> 61) as usize;
            (ETHERNET_HEADER_LEN + offset, (where_draw & 7) as u8)
        });
        Fate { lost, duplicated, overtaken_by, corrupt_at }
    }
}

/// Flips bit `bit` of `frame[byte]`, if the frame is that long.
pub fn flip_bit(frame: &mut [u8], (byte, bit): (usize, u8)) {
    if let Some(b) = frame.get_mut(byte) {
        *b ^= 1 << (bit & 7);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_are_clamped_and_nan_is_zero() {
        let p = Impairments { loss: f64::NAN, duplicate: -1.0, reorder: 2.0, corrupt: 0.0, seed: 1 };
        assert!(!p.is_none());
        let s = p.sanitised();
        assert_eq!((s.loss, s.duplicate, s.reorder), (0.0, 0.0, 1.0));
        assert!(Impairments::none().is_none());
    }

    #[test]
    fn certain_fates_happen_and_corruption_stays_after_the_header() {
        let p = Impairments { loss: 1.0, duplicate: 1.0, reorder: 1.0, corrupt: 1.0, seed: 7 };
        let mut imp = Impairer::new(&p, 0);
        for len in [15usize, 60, 1514] {
            let f = imp.decide(len);
            assert!(f.lost && f.duplicated);
            let depth = f.overtaken_by.unwrap_or(0);
            assert!((1..=REORDER_MAX_DEPTH).contains(&depth), "depth {depth}");
            let (byte, bit) = f.corrupt_at.unwrap_or((0, 0));
            assert!((ETHERNET_HEADER_LEN..len).contains(&byte) && bit < 8, "({byte},{bit}) len {len}");
        }
        // A frame with nothing after the header cannot be corrupted.
        assert_eq!(imp.decide(14).corrupt_at, None);
    }

    #[test]
    fn one_impairment_does_not_shift_the_decisions_of_another() {
        let only_loss = Impairments { loss: 0.3, ..Impairments::none() };
        let loss_and_more = Impairments { loss: 0.3, corrupt: 0.5, duplicate: 0.5, ..Impairments::none() };
        let mut a = Impairer::new(&only_loss, 0);
        let mut b = Impairer::new(&loss_and_more, 0);
        for _ in 0..1000 {
            assert_eq!(a.decide(100).lost, b.decide(100).lost);
        }
    }

    #[test]
    fn directions_get_different_streams() {
        let p = Impairments { loss: 0.5, ..Impairments::none() };
        let mut a = Impairer::new(&p, 0);
        let mut b = Impairer::new(&p, 1);
        let fa: Vec<bool> = (0..64).map(|_| a.decide(100).lost).collect();
        let fb: Vec<bool> = (0..64).map(|_| b.decide(100).lost).collect();
        assert_ne!(fa, fb);
    }

    #[test]
    fn flip_bit_flips_exactly_one_bit_and_ignores_out_of_range() {
        let mut f = [0u8; 20];
        flip_bit(&mut f, (15, 3));
        assert_eq!(f[15], 0b1000);
        assert_eq!(f.iter().map(|b| b.count_ones()).sum::<u32>(), 1);
        flip_bit(&mut f, (99, 0));
    }
}
