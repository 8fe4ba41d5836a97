//! Which versions the history sweep keeps: every version that was current at any time in
//! the last `keep_days`, and at least the newest `keep_min`.

use serde::Deserialize;

const DAY_MS: i64 = 86_400_000;

/// `[storage.history]`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Days during which every version that was current stays readable (fractions allowed;
    /// 0 keeps only `keep_min`).
    pub keep_days: f64,
    /// Versions always kept, newest first, whatever their age (at least 1: the current one).
    pub keep_min: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            keep_days: 7.0,
            keep_min: 10,
        }
    }
}

impl HistoryConfig {
    /// Checks the ranges once at start-up; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.keep_days.is_finite() && (0.0..=36_500.0).contains(&self.keep_days)) {
            return Err("storage.history.keep_days must be between 0 and 36500".into());
        }
        if self.keep_min < 1 {
            return Err("storage.history.keep_min must be at least 1 (the current version)".into());
        }
        Ok(())
    }

    fn window_ms(&self) -> i64 {
        (self.keep_days * DAY_MS as f64) as i64
    }

    /// For versions that became current at `became_current_ms` (oldest first), whether each
    /// is kept at `now_ms`. A version is current from its instant until the next one's, and
    /// kept when that span reaches into `(now − keep_days, now]`, when it is among the newest
    /// `keep_min`, or when it is the newest. A deleted table (`deleted`) keeps nothing past
    /// the window: its history goes `keep_days` after the delete, so space comes back.
    pub fn retained(&self, became_current_ms: &[i64], now_ms: i64, deleted: bool) -> Vec<bool> {
        let n = became_current_ms.len();
        let cutoff = now_ms.saturating_sub(self.window_ms());
        (0..n)
            .map(|i| {
                let newest = i + 1 == n;
                let in_window = match became_current_ms.get(i + 1) {
                    Some(&until) => until > cutoff,
                    None => true,
                };
                if deleted {
                    return in_window;
                }
                newest || i + self.keep_min >= n || in_window
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn config(keep_days: f64, keep_min: usize) -> HistoryConfig {
        HistoryConfig {
            keep_days,
            keep_min,
        }
    }

    #[test]
    fn a_version_replaced_exactly_at_the_window_start_expires_one_replaced_a_millisecond_later_stays()
     {
        let now = 30 * 24 * HOUR;
        let cutoff = now - 7 * 24 * HOUR;
        let keep = config(7.0, 1);
        assert_eq!(
            keep.retained(&[0, cutoff, now - HOUR], now, false),
            vec![false, true, true]
        );
        assert_eq!(
            keep.retained(&[0, cutoff + 1, now - HOUR], now, false),
            vec![true, true, true]
        );
    }

    #[test]
    fn keep_min_keeps_the_newest_versions_whatever_their_age() {
        let now = 100 * 24 * HOUR;
        let times: Vec<i64> = (0..20).map(|i| i * HOUR).collect();
        let kept = config(7.0, 10).retained(&times, now, false);
        assert_eq!(kept.iter().filter(|k| **k).count(), 10);
        assert!(kept[10..].iter().all(|k| *k));
    }

    #[test]
    fn no_days_and_keep_min_one_keeps_only_the_current_version() {
        let now = 10 * HOUR;
        assert_eq!(
            config(0.0, 1).retained(&[HOUR, 2 * HOUR, 9 * HOUR], now, false),
            vec![false, false, true]
        );
    }

    #[test]
    fn a_deleted_tables_history_goes_when_the_window_has_passed_the_delete() {
        let now = 30 * 24 * HOUR;
        let keep = config(7.0, 10);
        let recent_delete = [HOUR, now - 2 * 24 * HOUR];
        assert_eq!(keep.retained(&recent_delete, now, true), vec![true, true]);
        let old_delete = [HOUR, now - 8 * 24 * HOUR];
        assert_eq!(keep.retained(&old_delete, now, true), vec![false, true]);
    }
}
