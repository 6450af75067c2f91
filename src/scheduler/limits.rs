//! MaximumConcurrentConnections as owned permits, one limiter per profile.
//!
//! A pass holds one permit for its whole duration and makes its EWS requests one at a time,
//! so a profile never has more concurrent requests than permits out. The scheduler only
//! `try_acquire`s (it never waits on a full profile, so a full profile blocks no other), and
//! the limit can change live: lowering it stops new permits until enough are returned; no
//! permit already out is revoked, none beyond the new limit is handed out.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// The connection budget of one profile.
#[derive(Debug)]
pub struct ConnectionLimiter {
    limit: AtomicU32,
    in_use: AtomicU32,
    peak: AtomicU32,
}

impl ConnectionLimiter {
    /// A limiter allowing `limit` permits at once.
    pub fn new(limit: u32) -> Arc<Self> {
        Arc::new(Self {
            limit: AtomicU32::new(limit),
            in_use: AtomicU32::new(0),
            peak: AtomicU32::new(0),
        })
    }

    /// Change the limit (takes effect for the next acquisition).
    pub fn set_limit(&self, limit: u32) {
        self.limit.store(limit, Ordering::SeqCst);
    }

    /// The current limit.
    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::SeqCst)
    }

    /// Permits out now.
    pub fn in_use(&self) -> u32 {
        self.in_use.load(Ordering::SeqCst)
    }

    /// Most permits ever out at once.
    pub fn peak(&self) -> u32 {
        self.peak.load(Ordering::SeqCst)
    }

    /// Permits that could be handed out now.
    pub fn available(&self) -> u32 {
        self.limit().saturating_sub(self.in_use())
    }

    /// Take a permit if one is free; never waits.
    pub fn try_acquire(self: &Arc<Self>) -> Option<ConnectionPermit> {
        let mut current = self.in_use.load(Ordering::SeqCst);
        loop {
            if current >= self.limit.load(Ordering::SeqCst) {
                return None;
            }
            match self.in_use.compare_exchange(
                current,
                current + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    self.peak.fetch_max(current + 1, Ordering::SeqCst);
                    return Some(ConnectionPermit {
                        limiter: Arc::clone(self),
                    });
                }
                Err(actual) => current = actual,
            }
        }
    }
}

/// One connection's worth of a profile's budget; returned when dropped.
#[derive(Debug)]
pub struct ConnectionPermit {
    limiter: Arc<ConnectionLimiter>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.limiter.in_use.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_permits_than_the_limit() {
        let limiter = ConnectionLimiter::new(2);
        let a = limiter.try_acquire().unwrap();
        let _b = limiter.try_acquire().unwrap();
        assert!(limiter.try_acquire().is_none());
        drop(a);
        assert!(limiter.try_acquire().is_some());
        assert_eq!(limiter.peak(), 2);
    }

    #[test]
    fn lowering_the_limit_stops_new_permits_until_enough_return() {
        let limiter = ConnectionLimiter::new(3);
        let permits: Vec<_> = (0..3).map(|_| limiter.try_acquire().unwrap()).collect();
        limiter.set_limit(1);
        let mut permits = permits.into_iter();
        drop(permits.next());
        assert!(limiter.try_acquire().is_none(), "2 out, limit 1");
        drop(permits.next());
        assert!(limiter.try_acquire().is_none(), "1 out, limit 1");
        drop(permits.next());
        assert!(limiter.try_acquire().is_some());
    }

    #[test]
    fn raising_the_limit_hands_out_more_at_once() {
        let limiter = ConnectionLimiter::new(1);
        let _a = limiter.try_acquire().unwrap();
        limiter.set_limit(2);
        assert!(limiter.try_acquire().is_some());
    }

    #[test]
    fn concurrent_acquirers_never_exceed_the_limit() {
        let limiter = ConnectionLimiter::new(4);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..10_000 {
                        if let Some(permit) = limiter.try_acquire() {
                            assert!(limiter.in_use() <= 4);
                            drop(permit);
                        }
                    }
                });
            }
        });
        assert!(limiter.peak() <= 4);
        assert_eq!(limiter.in_use(), 0);
    }
}
