//! Background compaction of the change log (the watch history), by count and by age.
//!
//! The history keeps at least the newest `revisions` changes AND every change younger than
//! `age`. Revisions carry no timestamps, so the age bound comes from samples of the newest
//! revision taken at every round: the newest revision seen `age` ago (or, while the server is
//! younger than `age`, the first revision it saw) is the oldest one that must stay.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use prext_store::Store;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How much history to keep.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// At least this many of the newest revisions.
    pub revisions: i64,
    /// At least every change younger than this (zero: no age bound).
    pub age: Duration,
}

/// Revision samples taken at each round, to translate an age into a revision.
#[derive(Debug, Default)]
struct Samples(VecDeque<(Instant, i64)>);

impl Samples {
    /// Records `newest` at `now` and returns the oldest revision that the age bound keeps.
    fn floor(&mut self, now: Instant, newest: i64, age: Duration) -> i64 {
        self.0.push_back((now, newest));
        if age.is_zero() {
            self.0.clear();
            return newest;
        }
        let cutoff = now.checked_sub(age);
        // Drop samples older than the newest sample that is itself older than the cutoff.
        while let (Some(cutoff), Some(&(_, _)), Some(&(t1, _))) = (cutoff, self.0.front(), self.0.get(1)) {
            if t1 <= cutoff {
                self.0.pop_front();
            } else {
                break;
            }
        }
        self.0.front().map(|&(_, r)| r).unwrap_or(newest)
    }
}

/// How many of the newest revisions to keep, given both bounds.
fn keep(newest: i64, age_floor: i64, retention: Retention) -> i64 {
    retention.revisions.max(newest - age_floor).max(0)
}

/// Compacts every `every` until shutdown.
pub async fn run(store: Arc<dyn Store>, retention: Retention, every: Duration, shutdown: CancellationToken) {
    let mut samples = Samples::default();
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let newest = match store.revision().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "compaction skipped: cannot read the revision");
                continue;
            }
        };
        let floor = samples.floor(Instant::now(), newest, retention.age);
        match store.compact(keep(newest, floor, retention)).await {
            Ok(oldest) => tracing::debug!(oldest, newest, "compacted the change history"),
            Err(e) => tracing::warn!(error = %e, "compaction failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_bound_alone() {
        let r = Retention {
            revisions: 10,
            age: Duration::ZERO,
        };
        let mut s = Samples::default();
        let now = Instant::now();
        assert_eq!(keep(100, s.floor(now, 100, r.age), r), 10);
    }

    #[test]
    fn age_bound_keeps_what_is_younger() {
        let r = Retention {
            revisions: 5,
            age: Duration::from_secs(60),
        };
        let mut s = Samples::default();
        let t0 = Instant::now();
        // While the server is younger than the age, everything since start stays.
        assert_eq!(keep(50, s.floor(t0, 50, r.age), r), 5);
        assert_eq!(keep(80, s.floor(t0 + Duration::from_secs(30), 80, r.age), r), 30);
        assert_eq!(keep(90, s.floor(t0 + Duration::from_secs(59), 90, r.age), r), 40);
        // 70 s after start, the revision newest 60 s ago is the one sampled at t0+0..10 s.
        assert_eq!(
            keep(100, s.floor(t0 + Duration::from_secs(70), 100, r.age), r),
            50
        );
        // 100 s after start: the sample from t0+30 s (80) is the newest older than the cutoff.
        assert_eq!(
            keep(120, s.floor(t0 + Duration::from_secs(100), 120, r.age), r),
            40
        );
        // A large count bound wins over a short age.
        let big = Retention {
            revisions: 1000,
            age: Duration::from_secs(60),
        };
        assert_eq!(keep(120, 110, big), 1000);
    }
}
