//! The day budget: stanzas and bytes sent within a sliding window (a day by default), so a
//! relay never sends more through one account than its owner allowed. Counted in coarse
//! slots, so the bookkeeping stays a few kilobytes however many stanzas a day brings.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Slots per window: a stanza is forgotten at most one slot (a minute of a day) late.
const SLOTS: u32 = 1440;

/// Stanzas and bytes sent within the last `window`; see the module documentation.
pub(crate) struct DayBudget {
    max_stanzas: u64,
    max_bytes: u64,
    window: Duration,
    slot: Duration,
    /// (slot start, stanzas, bytes), oldest first.
    slots: VecDeque<(Instant, u64, u64)>,
    stanzas: u64,
    bytes: u64,
}

impl DayBudget {
    /// A budget of `max_stanzas` and `max_bytes` per `window` (0: that bound is off).
    pub(crate) fn new(max_stanzas: u64, max_bytes: u64, window: Duration) -> Self {
        DayBudget {
            max_stanzas,
            max_bytes,
            window,
            slot: (window / SLOTS).max(Duration::from_millis(1)),
            slots: VecDeque::new(),
            stanzas: 0,
            bytes: 0,
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(t, s, b)) = self.slots.front() {
            if t + self.window > now {
                break;
            }
            self.slots.pop_front();
            self.stanzas -= s;
            self.bytes -= b;
        }
    }

    /// `None` when a stanza of `bytes` fits now; otherwise when the budget frees up. A stanza
    /// larger than the whole byte budget passes when nothing else was sent in the window, so
    /// it waits but is never stuck.
    pub(crate) fn check(&mut self, bytes: usize, now: Instant) -> Option<Instant> {
        self.expire(now);
        let over_stanzas = self.max_stanzas > 0 && self.stanzas >= self.max_stanzas;
        let over_bytes = self.max_bytes > 0
            && self.bytes > 0
            && self.bytes.saturating_add(bytes as u64) > self.max_bytes;
        if !(over_stanzas || over_bytes) {
            return None;
        }
        Some(self.slots.front().map_or(now, |&(t, _, _)| t + self.window))
    }

    /// Count a stanza of `bytes` sent at `now`.
    pub(crate) fn record(&mut self, bytes: usize, now: Instant) {
        let bytes = bytes as u64;
        match self.slots.back_mut() {
            Some((t, s, b)) if now < *t + self.slot => {
                *s += 1;
                *b += bytes;
            }
            _ => self.slots.push_back((now, 1, bytes)),
        }
        self.stanzas += 1;
        self.bytes += bytes;
    }

    /// Stanzas and bytes sent within the window as of the last check.
    pub(crate) fn used(&self) -> (u64, u64) {
        (self.stanzas, self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_stanza_budget_waits_for_the_oldest_slot_to_age_out() {
        let window = Duration::from_secs(60);
        let mut b = DayBudget::new(2, 0, window);
        let t0 = Instant::now();
        for _ in 0..2 {
            assert_eq!(b.check(100, t0), None);
            b.record(100, t0);
        }
        assert_eq!(b.check(100, t0), Some(t0 + window));
        assert_eq!(b.used(), (2, 200));
        assert_eq!(b.check(100, t0 + window), None, "the window moved on");
        assert_eq!(b.used(), (0, 0));
    }

    #[test]
    fn the_byte_budget_holds_a_stanza_that_does_not_fit_but_never_one_alone() {
        let window = Duration::from_secs(60);
        let mut b = DayBudget::new(0, 1000, window);
        let t0 = Instant::now();
        assert_eq!(b.check(5000, t0), None, "alone in the window: it passes");
        b.record(5000, t0);
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(b.check(10, t1), Some(t0 + window));
        assert_eq!(b.check(10, t0 + window), None);
    }

    #[test]
    fn bookkeeping_stays_within_the_slot_count() {
        let window = Duration::from_secs(1440);
        let mut b = DayBudget::new(0, 0, window);
        let t0 = Instant::now();
        for i in 0..10_000u64 {
            let now = t0 + Duration::from_millis(i * 500);
            assert_eq!(b.check(1, now), None);
            b.record(1, now);
        }
        assert!(b.slots.len() <= SLOTS as usize + 1, "{}", b.slots.len());
    }
}
