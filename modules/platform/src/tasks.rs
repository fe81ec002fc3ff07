//! Background work on a timer or woken on demand, stopped with the server.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `round` at once and then every `interval` until `stop` is cancelled; a round is
/// never interrupted, so it stops between rounds.
pub async fn every<F, Fut>(interval: Duration, stop: CancellationToken, mut round: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        round().await;
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// What [`pause`] ended on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Woken, or the wait was over: run another round.
    Run,
    /// `stop` was cancelled.
    Stop,
}

/// The wait between two rounds of a worker that is woken when there is work (`wake`) and
/// looks anyway after `wait`, until `stop`.
pub async fn pause(stop: &CancellationToken, wake: &tokio::sync::Notify, wait: Duration) -> Resume {
    tokio::select! {
        () = stop.cancelled() => Resume::Stop,
        () = wake.notified() => Resume::Run,
        () = tokio::time::sleep(wait) => Resume::Run,
    }
}
