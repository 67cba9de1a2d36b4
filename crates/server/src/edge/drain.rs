//! A shutdown's drain: new INVITEs are refused (503, Retry-After) while calls go on for the
//! grace time; then the calls left get BYE with a Reason, and the edge reports once the
//! table is empty and our BYEs had a moment for their answers.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::Edge;

/// A shutdown in progress: no new calls; what is left is hung up at `hang_up_at`.
pub(super) struct Draining {
    pub(super) hang_up_at: Instant,
    pub(super) hung_up: bool,
    /// After our BYEs, a moment for their answers (and UDP retransmissions).
    pub(super) linger_until: Option<Instant>,
    pub(super) done: Option<oneshot::Sender<()>>,
}

/// How long the edge keeps running after its last BYE of a shutdown.
const BYE_LINGER: Duration = Duration::from_millis(1500);

impl Draining {
    pub(super) fn next(&self) -> Option<Instant> {
        self.done.as_ref()?;
        if !self.hung_up {
            Some(self.hang_up_at)
        } else {
            self.linger_until
        }
    }
}

impl Edge {
    /// SIGTERM: no new calls from now; the calls left are hung up after `grace`.
    pub(super) fn start_drain(&mut self, now: Instant, grace: Duration, done: oneshot::Sender<()>) {
        tracing::info!(
            legs = self.table.len(),
            grace_secs = grace.as_secs(),
            "draining: new calls get 503; calls still up then get BYE"
        );
        self.draining = Some(Draining {
            hang_up_at: now + grace,
            hung_up: false,
            linger_until: None,
            done: Some(done),
        });
        self.unregister_all(now);
    }

    /// A shutdown's steps: hang up what is left when the grace time is over, then report
    /// once the table is empty (and our BYEs had a moment for their answers).
    pub(super) fn check_drain(&mut self, now: Instant) {
        let Some(d) = self.draining.as_mut() else {
            return;
        };
        if d.done.is_none() {
            return;
        }
        if !d.hung_up && now >= d.hang_up_at {
            d.hung_up = true;
            tracing::info!(
                legs = self.table.len(),
                "drain time over: hanging up the calls left"
            );
            self.table.shut_down(now);
            return;
        }
        if !self.table.is_empty() {
            return;
        }
        if d.hung_up && d.linger_until.is_none() {
            d.linger_until = Some(now + BYE_LINGER);
        }
        if d.linger_until.is_none_or(|t| now >= t) {
            tracing::info!("drained: no calls left");
            if let Some(done) = d.done.take() {
                let _ = done.send(());
            }
        }
    }
}
