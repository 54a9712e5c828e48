//! Rateless invertible Bloom lookup table (Yang, Gilad, Alizadeh, SIGCOMM 2024).
//!
//! A sender turns its set into an endless stream of coded symbols; symbol `i` is the XOR of
//! the ids mapped to it plus the XOR of their checksums. Each id maps to index 0 and then to a
//! random sequence of indices whose density falls like `1 / (1 + i/2)`, so any prefix of the
//! stream of length about 1.35–2 × d decodes a difference of d ids, whatever d is. The receiver
//! XORs its own symbols in, which cancels the common ids, and peels pure cells.
//!
//! Cells carry no count: a cell is pure when its checksum matches its sum and its index is one
//! of the sum's mapped indices; whether the id is ours or theirs is a lookup in our set. The
//! protocol's final range-fingerprint check catches the vanishing case of a false peel.

use super::hash::{Keys, Words, mix_words};
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// Bytes of one coded symbol on the wire: 32 bytes of XOR-ed ids and a 4-byte checksum.
pub(crate) const SYMBOL_BYTES: usize = 36;

/// One coded symbol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Cell {
    /// XOR of the ids mapped here.
    pub sum: Words,
    /// XOR of their checksums.
    pub check: u32,
}

impl Cell {
    /// XORs one id (with its checksum) into the cell.
    #[inline]
    pub(crate) fn toggle(&mut self, id: &Words, check: u32) {
        for (a, b) in self.sum.iter_mut().zip(id) {
            *a ^= b;
        }
        self.check ^= check;
    }

    /// Whether the cell is empty.
    #[inline]
    pub(crate) fn is_zero(&self) -> bool {
        self.check == 0 && self.sum == [0; 4]
    }
}

/// Checksum of an id.
#[inline]
pub(crate) fn checksum(id: &Words, keys: &Keys) -> u32 {
    mix_words(id, keys.check) as u32
}

/// A hasher for keys that are already keyed 64-bit hashes: it passes them through.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// A set of ids, each stored as its keyed hash (`mix_words(id, keys.fp)`).
pub(crate) type IdSet = HashSet<u64, BuildHasherDefault<PassThrough>>;

/// The pseudo-random index sequence of one id: 0, then increasing indices.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mapping {
    prng: u64,
    /// The current index.
    pub index: u64,
}

impl Mapping {
    /// The sequence of an id; its current index is 0.
    #[inline]
    pub(crate) fn new(id: &Words, keys: &Keys) -> Mapping {
        Mapping {
            prng: mix_words(id, keys.map),
            index: 0,
        }
    }

    /// Moves to the next index. The gap is drawn so that index `i` is hit with probability
    /// about `1 / (1 + i/2)` (the RIBLT paper's distribution): with `u` uniform in (0, 1],
    /// the gap is `ceil((i + 1.5) * (1/sqrt(u) - 1))`. Only exact IEEE operations are used
    /// (and integer conversions below 2^53), so both peers compute the same sequence.
    #[inline]
    pub(crate) fn advance(&mut self) -> u64 {
        let r = self.prng.wrapping_mul(0xda94_2042_e4dd_58b5);
        self.prng = r;
        if self.index >= 1 << 52 {
            self.index = u64::MAX;
            return self.index;
        }
        let u = ((r >> 11) as i64 as f64 + 1.0) * (1.0 / (1u64 << 53) as f64);
        let gap = (self.index as i64 as f64 + 1.5) * (1.0 / u.sqrt() - 1.0);
        // Ceiling without a libm call; a gap of at least 1 keeps the sequence increasing.
        let gap = if gap >= (1u64 << 52) as f64 {
            1u64 << 52
        } else {
            let whole = gap as i64 as u64;
            if (whole as i64 as f64) < gap {
                whole + 1
            } else {
                whole
            }
        };
        self.index = self.index.saturating_add(gap.max(1));
        self.index
    }
}

/// Coded symbols `start..start + count` of a set of ids.
pub(crate) fn encode<'a>(
    ids: impl Iterator<Item = &'a [u8; 32]>,
    keys: &Keys,
    start: u64,
    count: usize,
) -> Vec<Cell> {
    let mut cells = vec![Cell::default(); count];
    let end = start.saturating_add(count as u64);
    for id in ids {
        let w = super::hash::words(id);
        let check = checksum(&w, keys);
        let mut m = Mapping::new(&w, keys);
        while m.index < end {
            if m.index >= start {
                cells[(m.index - start) as usize].toggle(&w, check);
            }
            m.advance();
        }
    }
    cells
}

/// Peeling decoder of the difference between a remote stream and our own set.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    /// Residual cells: remote XOR local XOR the ids decoded so far.
    cells: Vec<Cell>,
    /// Decoded ids with their mappings, parked at their first index beyond `cells`.
    decoded: Vec<(Words, u32, Mapping)>,
    /// Decoded ids that we hold and the sender lacks.
    pub ours: Vec<[u8; 32]>,
    /// Decoded ids that the sender holds and we lack.
    pub theirs: Vec<[u8; 32]>,
    /// Every id peeled so far. A consistent stream never yields one twice: once peeled it is
    /// gone from every cell. A second peel means the symbols do not describe one fixed set (a
    /// set changed between rounds, or a hostile sender), and peeling on would toggle that id
    /// in and out of cells forever.
    peeled: HashSet<Words>,
    /// The stream was found inconsistent; nothing more is peeled.
    inconsistent: bool,
}

impl Decoder {
    /// Number of symbols received so far.
    pub(crate) fn len(&self) -> u64 {
        self.cells.len() as u64
    }

    /// Whether every residual cell is empty (the difference is fully decoded).
    pub(crate) fn is_complete(&self) -> bool {
        !self.cells.is_empty() && self.cells.iter().all(Cell::is_zero)
    }

    /// Whether the symbols proved inconsistent (see `peeled`): the session must fail.
    pub(crate) fn is_inconsistent(&self) -> bool {
        self.inconsistent
    }

    /// Number of residual cells that are not empty.
    pub(crate) fn nonzero(&self) -> usize {
        self.cells.iter().filter(|c| !c.is_zero()).count()
    }

    /// Adds the next remote symbols; `local` are our own symbols for the same indices and
    /// `our_ids` the keyed hashes of our ids in the reconciled range.
    pub(crate) fn extend(&mut self, remote: &[Cell], local: &[Cell], our_ids: &IdSet, keys: &Keys) {
        let start = self.cells.len();
        for (r, l) in remote.iter().zip(local) {
            let mut c = *r;
            c.toggle(&l.sum, l.check);
            self.cells.push(c);
        }
        let end = self.cells.len() as u64;
        for (id, check, m) in &mut self.decoded {
            while m.index < end {
                self.cells[m.index as usize].toggle(id, *check);
                m.advance();
            }
        }
        // Only new cells can be newly pure: older ones changed only through peeled ids,
        // whose cells were queued when they were peeled.
        let mut queue: Vec<usize> = (start..self.cells.len()).rev().collect();
        while let Some(i) = queue.pop() {
            if self.inconsistent {
                return;
            }
            self.try_peel(i, our_ids, keys, &mut queue);
        }
    }

    /// Peels cell `i` if it holds exactly one id, queueing the cells that id touched.
    fn try_peel(&mut self, i: usize, our_ids: &IdSet, keys: &Keys, queue: &mut Vec<usize>) {
        let cell = self.cells[i];
        if cell.is_zero() || checksum(&cell.sum, keys) != cell.check {
            return;
        }
        let id = cell.sum;
        let mut m = Mapping::new(&id, keys);
        while m.index < i as u64 {
            m.advance();
        }
        if m.index != i as u64 {
            return;
        }
        // Each genuine peel empties a cell for good, so there are never more peels than cells.
        if self.decoded.len() >= self.cells.len() || !self.peeled.insert(id) {
            self.inconsistent = true;
            return;
        }
        let check = cell.check;
        let len = self.cells.len() as u64;
        let mut m = Mapping::new(&id, keys);
        while m.index < len {
            let j = m.index as usize;
            self.cells[j].toggle(&id, check);
            queue.push(j);
            m.advance();
        }
        self.decoded.push((id, check, m));
        let bytes = super::hash::id_of(&id);
        if our_ids.contains(&mix_words(&id, keys.fp)) {
            self.ours.push(bytes);
        } else {
            self.theirs.push(bytes);
        }
    }
}
