//! What every adapter's tasks share about stopping: a shutdown signal that carries the close
//! grace, and reporting to the node (which may be gone).

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::TransportEvent;

/// A transport's shutdown: `None` while running, then the instant its close grace ends.
/// Tasks wait on it; `close` starts it once.
#[derive(Debug)]
pub struct Shutdown(watch::Sender<Option<Instant>>);

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown(watch::channel(None).0)
    }
}

impl Shutdown {
    /// A transport not shutting down.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start shutting down, with `grace` for what is in flight (once: a second call keeps the
    /// first deadline). Returns when the grace ends.
    pub fn begin(&self, grace: std::time::Duration) -> Instant {
        let deadline = Instant::now() + grace;
        self.0.send_if_modified(|d| {
            if d.is_some() {
                return false;
            }
            *d = Some(deadline);
            true
        });
        self.0.borrow().unwrap_or(deadline)
    }

    /// True once shutting down.
    pub fn is_shutting_down(&self) -> bool {
        self.0.borrow().is_some()
    }

    /// Completes once the transport starts shutting down.
    pub async fn started(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(Option::is_some).await;
    }

    /// Completes when the transport is shutting down and its close grace has ended.
    pub async fn grace_over(&self) {
        let mut rx = self.0.subscribe();
        let deadline = match rx.wait_for(Option::is_some).await {
            Ok(deadline) => *deadline,
            Err(_) => None,
        };
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    }
}

/// Tell the node about `event`. A node that dropped its receiver is gone: nothing is left to
/// tell, so that is no error.
pub async fn report(events: &mpsc::Sender<TransportEvent>, event: TransportEvent) {
    let _ = events.send(event).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_grace_starts_once_and_ends_after_its_length() {
        let s = Shutdown::new();
        assert!(!s.is_shutting_down());
        let end = s.begin(std::time::Duration::from_secs(5));
        assert_eq!(
            s.begin(std::time::Duration::from_secs(50)),
            end,
            "only once"
        );
        assert!(s.is_shutting_down());
        s.started().await;
        let t0 = Instant::now();
        s.grace_over().await;
        assert_eq!(t0.elapsed().as_secs(), 5);
    }
}
