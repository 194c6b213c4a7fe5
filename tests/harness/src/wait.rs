use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Polls `condition` until it yields `Some`, or fails after `timeout`.
///
/// `what` names the awaited state in the timeout error. A condition future
/// that hangs is cut off at the deadline.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut condition: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let polled = tokio::time::timeout(remaining, condition()).await.ok();
        if let Some(Some(value)) = polled {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: what.to_owned(),
                timeout,
            });
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - Instant::now())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn returns_the_value_once_the_condition_holds() {
        let calls = AtomicU32::new(0);
        let got = wait_for("third call", Duration::from_secs(5), || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            (n >= 3).then_some(n)
        })
        .await
        .expect("condition holds on the third call");
        assert_eq!(got, 3);
    }

    #[tokio::test]
    async fn times_out_naming_what_it_waited_for() {
        let start = Instant::now();
        let err = wait_for("never", Duration::from_millis(300), || async { None::<()> })
            .await
            .unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert!(start.elapsed() < Duration::from_secs(3));
        assert!(
            matches!(err, Error::Timeout { ref what, .. } if what == "never"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn cuts_off_a_hanging_condition() {
        let start = Instant::now();
        let err = wait_for("hang", Duration::from_millis(200), || {
            std::future::pending::<Option<()>>()
        })
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }));
        assert!(start.elapsed() < Duration::from_secs(3));
    }
}
