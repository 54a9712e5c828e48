//! Cheap keyed hashing of item ids, and the strata estimator of the difference size.
//!
//! Ids are BLAKE3 hashes, so their bytes are already uniform; what the mixing adds is a
//! per-session key (the salt), so that nobody who grinds post ids can make differences cancel
//! in our fingerprints without knowing the salt. It is a fast multiply–xorshift mix, not a
//! cryptographic MAC: a few nanoseconds per id keeps a 100,000-item summary in milliseconds.

/// Number of cells per stratum in the estimator.
pub(crate) const EST_CELLS: usize = 16;

/// Bits of each estimator cell (a cell is the XOR of that many hash bits per id).
const EST_BITS: usize = 4;

/// Bytes of one stratum on the wire.
pub(crate) const EST_BUCKETS: usize = EST_CELLS * EST_BITS / 8;

/// Cells of a bucket sketch (4 bits each).
const SUB_CELLS: usize = 8;

/// Bytes of a bucket sketch on the wire.
pub(crate) const SUB_BYTES: usize = SUB_CELLS * 4 / 8;

/// Most strata an estimator may carry (enough for sets of 2^60 items).
pub(crate) const MAX_STRATA: usize = 62;

/// An id as four little-endian 64-bit words (cheaper to XOR and hash than bytes).
pub(crate) type Words = [u64; 4];

/// The words of an id.
#[inline]
pub(crate) fn words(id: &[u8; 32]) -> Words {
    let mut w = [0u64; 4];
    for (k, out) in w.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&id[k * 8..k * 8 + 8]);
        *out = u64::from_le_bytes(b);
    }
    w
}

/// The id of some words (inverse of [`words`]).
#[inline]
pub(crate) fn id_of(w: &Words) -> [u8; 32] {
    let mut id = [0u8; 32];
    for (k, word) in w.iter().enumerate() {
        id[k * 8..k * 8 + 8].copy_from_slice(&word.to_le_bytes());
    }
    id
}

/// The splitmix64 finaliser: a bijective avalanche of one word.
#[inline]
pub(crate) fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Keyed 64-bit hash of an id.
#[inline]
pub(crate) fn mix(id: &[u8; 32], key: u64) -> u64 {
    mix_words(&words(id), key)
}

/// Keyed 64-bit hash of an id given as words.
#[inline]
pub(crate) fn mix_words(w: &Words, key: u64) -> u64 {
    let mut h = key;
    for &x in w {
        h = (h ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 29;
    }
    h ^= h >> 32;
    h = h.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    h ^ (h >> 32)
}

/// The independent keys one session derives from its salt.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Keys {
    /// Range and bucket fingerprints.
    pub fp: u64,
    /// The RIBLT index mapping.
    pub map: u64,
    /// The RIBLT cell checksum.
    pub check: u64,
    /// The strata estimator.
    pub est: u64,
}

impl Keys {
    /// Derives the keys of a session.
    pub(crate) fn new(salt: u64) -> Keys {
        Keys {
            fp: splitmix(salt ^ 0x01),
            map: splitmix(salt ^ 0x02),
            check: splitmix(salt ^ 0x03),
            est: splitmix(salt ^ 0x04),
        }
    }
}

/// Order-independent fingerprint of a set of ids: count and wrapping sum of keyed hashes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    /// Number of ids.
    pub count: u64,
    /// Wrapping sum of `mix(id, keys.fp)`.
    pub sum: u64,
}

impl Fingerprint {
    /// Adds one id.
    #[inline]
    pub(crate) fn add(&mut self, id: &[u8; 32], key: u64) {
        self.count = self.count.wrapping_add(1);
        self.sum = self.sum.wrapping_add(mix(id, key));
    }

    /// Removes one id (the inverse of [`Fingerprint::add`]).
    #[inline]
    pub(crate) fn remove(&mut self, id: &[u8; 32], key: u64) {
        self.count = self.count.wrapping_sub(1);
        self.sum = self.sum.wrapping_sub(mix(id, key));
    }
}

/// Number of strata for a set of `n` items. Stratum `j` tells differences of about
/// 16 × 2^(j+1) apart, so strata up to `log2(2n / 32)` cover any difference up to the
/// union of two such sets; deeper ids share the last stratum.
pub(crate) fn strata_levels(n: usize) -> usize {
    let bits = (usize::BITS - n.leading_zeros()) as usize;
    bits.saturating_sub(3).clamp(4, MAX_STRATA)
}

/// Builds a strata estimator: stratum `j` holds the ids whose hash has `j` leading zeros
/// (the last stratum also holds the deeper ones), spread over [`EST_CELLS`] cells, each the
/// XOR of [`EST_BITS`] hash bits per id, packed into [`EST_BUCKETS`] bytes.
#[cfg(test)]
pub(crate) fn strata<'a>(
    ids: impl Iterator<Item = &'a [u8; 32]>,
    key: u64,
    levels: usize,
) -> Vec<[u8; EST_BUCKETS]> {
    let mut out = vec![[0u8; EST_BUCKETS]; levels];
    if levels == 0 {
        return out;
    }
    for id in ids {
        strata_add(&mut out, mix(id, key));
    }
    out
}

/// Adds an id (given by its estimator hash `h`) to a strata estimator.
#[inline]
pub(crate) fn strata_add(out: &mut [[u8; EST_BUCKETS]], h: u64) {
    let levels = out.len();
    if levels == 0 {
        return;
    }
    let level = (h.leading_zeros() as usize).min(levels - 1);
    let cell = (h % EST_CELLS as u64) as usize;
    let value = ((h >> 8) & ((1 << EST_BITS) - 1)) as u8;
    let bit = cell * EST_BITS;
    out[level][bit / 8] ^= value << (bit % 8);
}

/// Maximum-likelihood estimate of the difference size from two estimators built with the
/// same key and depth. `max` caps the answer (the sum of both set sizes).
pub(crate) fn estimate(ours: &[[u8; EST_BUCKETS]], theirs: &[[u8; EST_BUCKETS]], max: u64) -> u64 {
    let levels = ours.len().min(theirs.len());
    if levels == 0 {
        return 0;
    }
    let mut differ = vec![0u32; levels];
    for j in 0..levels {
        for c in 0..EST_CELLS {
            let bit = c * EST_BITS;
            let mask = (((1u16 << EST_BITS) - 1) << (bit % 8)) as u8;
            if (ours[j][bit / 8] ^ theirs[j][bit / 8]) & mask != 0 {
                differ[j] += 1;
            }
        }
    }
    if differ.iter().all(|&x| x == 0) {
        return 0;
    }
    // A cell with a non-empty difference still looks equal with probability 2^-bits.
    let seen = 1.0 - 0.5f64.powi(EST_BITS as i32);
    let mut best = (f64::NEG_INFINITY, 1.0f64);
    let max = (max.max(1)) as f64;
    let mut d = 1.0f64;
    while d <= max * 1.0001 {
        let mut ll = 0.0;
        for (j, &k) in differ.iter().enumerate() {
            // Probability that a difference item falls in one cell of stratum j.
            let share = if j + 1 == levels {
                0.5f64.powi(j as i32)
            } else {
                0.5f64.powi(j as i32 + 1)
            } / EST_CELLS as f64;
            let p = ((1.0 - (-d * share).exp()) * seen).clamp(1e-12, 1.0 - 1e-12);
            let k = f64::from(k);
            ll += k * p.ln() + (EST_CELLS as f64 - k) * (1.0 - p).ln();
        }
        if ll > best.0 {
            best = (ll, d);
        }
        d = (d * 1.03).max(d + 1.0);
    }
    best.1.round() as u64
}

/// Adds an id (given by its estimator hash `h`) to a bucket sketch: 8 cells of 4 bits, each
/// the XOR of 4 hash bits of the ids that fall in it.
#[inline]
pub(crate) fn sketch_add(sketch: &mut [u8; SUB_BYTES], h: u64) {
    let cell = ((h >> 32) % SUB_CELLS as u64) as usize;
    let value = ((h >> 36) & 0xf) as u8;
    let bit = cell * 4;
    sketch[bit / 8] ^= value << (bit % 8);
}

/// Estimated number of differences between two bucket sketches; `None` when too many
/// cells differ to tell (about 10 differences or more: with 4-bit cells, a cell of a heavy
/// bucket still looks equal one time in 16, so 6 or 7 differing cells of 8 are ambiguous).
pub(crate) fn sketch_estimate(a: &[u8; SUB_BYTES], b: &[u8; SUB_BYTES]) -> Option<f64> {
    let mut differ = 0u32;
    for c in 0..SUB_CELLS {
        let bit = c * 4;
        if ((a[bit / 8] ^ b[bit / 8]) >> (bit % 8)) & 0xf != 0 {
            differ += 1;
        }
    }
    if differ as usize > SUB_CELLS * 5 / 8 {
        return None;
    }
    // A cell differs with probability (1 - e^(-x/8)) * 15/16 for x differences.
    let frac = f64::from(differ) / (SUB_CELLS as f64 * 15.0 / 16.0);
    Some(-(SUB_CELLS as f64) * (1.0 - frac).ln())
}
