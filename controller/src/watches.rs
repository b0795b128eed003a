//! How the controller's watch streams treat errors: an expired resourceVersion is a re-list,
//! not a failure, and no watch error ever reaches kube-runtime's `Controller`.
//!
//! kube-runtime's watcher answers a `410 Gone` (the resourceVersion it resumed from was
//! compacted) by starting a fresh list, and reports the 410 as an error item. Two backoffs
//! would then delay that list: the stream's own (`default_backoff`, 0.8 s and doubling), and
//! the `Controller`'s shared `trigger_backoff` around all trigger streams, which grows on
//! every error of any stream and resets only after two quiet minutes. One expiry hitting the
//! six watches at once kept every release in every namespace unreconciled for over a minute.
//! So an expiry goes straight to the re-list, and errors that are real failures (the API
//! server unreachable, a 403) are backed off by the stream they happened on, logged there,
//! and dropped: one failing watch does not slow the others.

use std::time::{Duration, Instant};

use futures::{Stream, StreamExt, future};
use kube::runtime::{WatchStreamExt, watcher};
use tracing::warn;

/// Expiries closer together than this are backed off like any error: a server that answers
/// every watch with 410 must not turn the controller into a list loop.
const EXPIRY_REPEAT: Duration = Duration::from_secs(1);

/// A watcher's events with expiries passed straight to its re-list, other errors backed off
/// on this stream and dropped after being logged (`what` names the watch in the log).
pub fn resilient<K, S>(
    what: &'static str,
    events: S,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send
where
    K: Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    let mut last_expiry: Option<Instant> = None;
    events
        .filter(move |item| {
            let pass = !is_expiry(item) || last_expiry.is_some_and(|t| t.elapsed() < EXPIRY_REPEAT);
            if is_expiry(item) {
                last_expiry = Some(Instant::now());
            }
            future::ready(pass)
        })
        .default_backoff()
        .filter_map(move |item| {
            future::ready(match item {
                Ok(event) => Some(Ok(event)),
                Err(error) => {
                    warn!(watch = what, %error, "watch failed; retrying with backoff");
                    None
                }
            })
        })
}

fn is_expiry<T>(item: &Result<T, watcher::Error>) -> bool {
    matches!(item, Err(watcher::Error::WatchError(status)) if status.code == 410)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;
    use kube::core::Status;

    fn gone() -> Result<watcher::Event<()>, watcher::Error> {
        let status = Status {
            code: 410,
            ..Status::failure("too old resource version", "Expired")
        };
        Err(watcher::Error::WatchError(status.boxed()))
    }

    #[tokio::test(start_paused = true)]
    async fn an_expiry_goes_straight_to_the_relist() {
        let events = stream::iter(vec![
            Ok(watcher::Event::Init),
            gone(),
            Ok(watcher::Event::InitDone),
        ]);
        let started = tokio::time::Instant::now();
        let seen: Vec<_> = resilient("test", events).collect().await;
        assert_eq!(seen.len(), 2, "the expiry is not passed on");
        assert!(seen.iter().all(Result::is_ok));
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "no backoff for an expiry"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_expiries_and_failures_are_backed_off_and_dropped() {
        let events = stream::iter(vec![gone(), gone(), Ok(watcher::Event::InitDone)]);
        let started = tokio::time::Instant::now();
        let seen: Vec<_> = resilient("test", events).collect().await;
        assert_eq!(seen.len(), 1, "errors never leave the stream");
        assert!(
            started.elapsed() >= Duration::from_millis(800),
            "a second expiry within a second is backed off (the watcher's 0.8 s): {:?}",
            started.elapsed()
        );
    }
}
