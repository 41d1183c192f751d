//! When to sweep an in-memory map of expiring entries.
//!
//! Sweeping (a `retain` over the whole map) on every insert once the map is "full" turns a
//! map of live entries into O(n) work per request. [`SweepSchedule`] sweeps when the map
//! reaches a threshold and then moves the threshold to twice the live size (never below a
//! floor), so sweeping costs amortised O(1) per insert however many entries are live.

/// The size at which a map is next swept.
#[derive(Debug, Clone, Copy)]
pub struct SweepSchedule {
    next: usize,
    floor: usize,
}

impl SweepSchedule {
    /// First sweep at `floor` entries; later thresholds never fall below it.
    pub const fn new(floor: usize) -> Self {
        Self { next: floor, floor }
    }

    /// Whether a map of `len` entries is due for a sweep.
    pub fn due(&self, len: usize) -> bool {
        len >= self.next
    }

    /// Records that a sweep left `live` entries.
    pub fn swept(&mut self, live: usize) {
        self.next = live.saturating_mul(2).max(self.floor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_doubles_with_live_entries_and_falls_back_to_the_floor() {
        let mut s = SweepSchedule::new(4);
        assert!(!s.due(3));
        assert!(s.due(4));
        s.swept(4); // nothing expired
        assert!(!s.due(7));
        assert!(s.due(8));
        s.swept(1); // most expired
        assert!(!s.due(3));
        assert!(s.due(4));
    }
}
