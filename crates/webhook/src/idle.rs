//! An inactivity clock on a connection: once no byte has moved in either
//! direction for the limit, a pending read fails with `TimedOut`, which ends
//! the HTTP connection. This bounds connections that hold a slot without
//! doing anything (idle HTTP/2 connections, bodies that stall half-way,
//! clients that never send the protocol preface).
//!
//! Hand-written rather than taken from `tokio-io-timeout`: that crate restarts
//! its read clock on reads only, while a client slowly draining a response is
//! active too and must not be cut off.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pub struct IdleTimeout<T> {
    inner: T,
    limit: Duration,
    last_activity: Instant,
    // Re-armed lazily when it fires: activity only records a timestamp, so the
    // hot path never touches the timer wheel.
    deadline: Pin<Box<Sleep>>,
}

impl<T> IdleTimeout<T> {
    pub fn new(inner: T, limit: Duration) -> Self {
        let now = Instant::now();
        IdleTimeout { inner, limit, last_activity: now, deadline: Box::pin(tokio::time::sleep_until(now + limit)) }
    }

    /// True once the limit has passed since the last activity; otherwise the
    /// timer is armed for the current deadline and will wake the task.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.deadline.as_mut().poll(cx).is_pending() {
                return false;
            }
            let due = self.last_activity + self.limit;
            if due <= Instant::now() {
                return true;
            }
            self.deadline.as_mut().reset(due);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.last_activity = Instant::now();
                }
                Poll::Ready(result)
            }
            Poll::Pending if self.expired(cx) => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle")))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.last_activity = Instant::now();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.last_activity = Instant::now();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn read_fails_after_the_limit_without_activity() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut idle = IdleTimeout::new(a, Duration::from_secs(5));
        let mut buf = [0u8; 8];
        tokio::time::sleep(Duration::from_secs(3)).await;
        b.write_all(b"x").await.unwrap();
        assert_eq!(idle.read(&mut buf).await.unwrap(), 1);
        // The byte at t=3 s moved the deadline to t=8 s.
        let started = Instant::now();
        let err = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn writes_count_as_activity_while_a_read_waits() {
        let (a, mut b) = tokio::io::duplex(64);
        let drain = tokio::spawn(async move {
            let mut sink = [0u8; 64];
            while b.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        });
        let (mut reader, mut writer) = tokio::io::split(IdleTimeout::new(a, Duration::from_secs(5)));
        let started = Instant::now();
        let read = async {
            let mut buf = [0u8; 8];
            let err = reader.read(&mut buf).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::TimedOut);
            started.elapsed()
        };
        let write = async {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_secs(3)).await;
                writer.write_all(b"y").await.unwrap();
            }
        };
        let (waited, ()) = tokio::join!(read, write);
        // Last write at t=12 s: the pending read fails at t=17 s, not t=5 s.
        assert_eq!(waited, Duration::from_secs(17));
        drop((reader, writer));
        drain.await.unwrap();
    }
}
