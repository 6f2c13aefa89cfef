//! The API listener: HTTP/1.1 (hyper) over TCP, with bounds on what a client can
//! hold open, none of which `axum::serve` has:
//!
//! - a connection with no request in progress is closed after [`ConnectionLimits::idle`]
//!   without a byte either way (keep-alive between requests), and after
//!   [`ConnectionLimits::header_read`] when a request has started to arrive but is not
//!   complete (slow headers) or a new connection has sent no complete request;
//! - at most [`ConnectionLimits::max`] connections are served at once. Beyond that, a new
//!   connection takes the place of the idle one least recently active (as nginx reuses
//!   keep-alive connections); when every connection is busy it waits, in accept order, for
//!   one to finish. A connection in the middle of a request is never closed for this.
//!
//! At shutdown it stops accepting, lets requests in flight finish and closes the rest.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt as _;

/// What one client may hold open (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once.
    pub max: usize,
    /// How long a connection with no request in progress may stay silent.
    pub idle: Duration,
    /// How long a request's head (request line and headers) may take to arrive, from its
    /// first byte (from the connection's start for its first request).
    pub header_read: Duration,
}

/// No time recorded (for [`Activity::arriving`]).
const NEVER: u64 = u64::MAX;

/// What the watchdog of one connection knows about it.
#[derive(Debug)]
struct Activity {
    /// When the connection was accepted; the times below are microseconds since.
    accepted: Instant,
    /// The last byte read or written.
    last: AtomicU64,
    /// The first byte of a request that has not reached the router yet, or [`NEVER`]; a new
    /// connection is waited on for its first request from the start.
    arriving: AtomicU64,
    /// Requests the router is answering (or whose answer is still being sent).
    in_flight: AtomicUsize,
    /// Chosen to make room for a new connection.
    evicted: AtomicBool,
    /// Wakes the watchdog to close the connection if it is still idle.
    evict: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            accepted: Instant::now(),
            last: AtomicU64::new(0),
            arriving: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.accepted.elapsed().as_micros()).unwrap_or(NEVER - 1)
    }

    fn at(&self, micros: u64) -> Instant {
        self.accepted + Duration::from_micros(micros)
    }

    fn read(&self, bytes: usize) {
        let now = self.now();
        self.last.store(now, Ordering::Relaxed);
        if bytes > 0 && self.in_flight.load(Ordering::Acquire) == 0 {
            let _ = self
                .arriving
                .compare_exchange(NEVER, now, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    fn wrote(&self) {
        self.last.store(self.now(), Ordering::Relaxed);
    }

    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// When the connection is to be closed if nothing happens meanwhile, and whether that
    /// time has come.
    fn deadline(&self, limits: &ConnectionLimits) -> (Instant, bool) {
        let now = self.now();
        if !self.idle() {
            return (self.at(now) + limits.idle, false);
        }
        let arriving = self.arriving.load(Ordering::Acquire);
        let at = if arriving == NEVER {
            self.at(self.last.load(Ordering::Relaxed)) + limits.idle
        } else {
            self.at(arriving) + limits.header_read
        };
        (at, at <= self.at(now))
    }
}

/// Counts a request as in flight until its answer has been sent (or dropped).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.arriving.store(NEVER, Ordering::Release);
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.wrote();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A TCP stream that tells its [`Activity`] about every byte.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.activity.read(buf.filled().len() - before);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(_)) = polled {
            self.activity.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(_)) = polled {
            self.activity.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The connections being served, to choose one to give way.
#[derive(Debug, Default)]
struct Registry {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
}

impl Registry {
    fn add(&self, activity: Arc<Activity>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, activity);
        id
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Activity>>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks the idle connection least recently active to close; false when none is idle.
    fn evict_one(&self) -> bool {
        let open = self.lock();
        let victim = open
            .values()
            .filter(|a| a.idle() && !a.evicted.load(Ordering::Acquire))
            .min_by_key(|a| a.at(a.last.load(Ordering::Relaxed)));
        match victim {
            Some(activity) => {
                activity.evicted.store(true, Ordering::Release);
                activity.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// How long to wait before accepting again after `accept` failed (out of file descriptors,
/// typically), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then lets
/// requests in flight finish and returns once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    // `acquire_many` below counts in u32.
    let max = limits.max.clamp(1, u32::MAX as usize);
    let slots = Arc::new(Semaphore::new(max));
    let registry = Arc::new(Registry::default());
    let mut stop = stop_rx.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, most likely: an idle connection makes room.
                tracing::warn!(%error, "failed to accept a connection");
                registry.evict_one();
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                registry.evict_one();
                tokio::select! {
                    slot = Arc::clone(&slots).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let id = registry.add(Arc::clone(&activity));
        let registry = Arc::clone(&registry);
        let router = router.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            connection(stream, peer, router, activity, limits, stop).await;
            registry.remove(id);
            drop(slot);
        });
    }
    drop(listener);
    // Every connection holds a slot until it is closed.
    let _ = slots
        .acquire_many(u32::try_from(max).unwrap_or(u32::MAX))
        .await;
}

/// Serves one connection until the client closes it, its watchdog does, or shutdown.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    activity: Arc<Activity>,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let io = TokioIo::new(Watched {
        stream,
        activity: Arc::clone(&activity),
    });
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let in_flight = InFlight::new(Arc::clone(&activity));
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await?;
                // In flight until the body has been sent.
                Ok::<_, Infallible>(response.map(move |body| {
                    Body::new(body.map_frame(move |frame| {
                        let _ = &in_flight;
                        frame
                    }))
                }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The watchdog bounds header reads; hyper's own timer is not used.
    builder.header_read_timeout(None);
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let (deadline, _) = activity.deadline(&limits);
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(%peer, %error, "a connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(deadline) => {
                if activity.deadline(&limits).1 {
                    tracing::debug!(%peer, "closed an idle or slow connection");
                    return;
                }
            }
            () = activity.evict.notified() => {
                if activity.idle() {
                    tracing::debug!(%peer, "closed an idle connection to make room for a new one");
                    return;
                }
                activity.evicted.store(false, Ordering::Release);
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_follows_the_state_of_the_connection() {
        let limits = ConnectionLimits {
            max: 1,
            idle: Duration::from_secs(60),
            header_read: Duration::from_secs(5),
        };
        let activity = Arc::new(Activity::new());
        let start = activity.accepted;
        // New: the header bound from the start.
        assert_eq!(
            activity.deadline(&limits),
            (start + limits.header_read, false)
        );
        // A request starts to arrive: the header bound from its first byte.
        activity.last.store(1_000_000, Ordering::Relaxed);
        activity.arriving.store(1_000_000, Ordering::Relaxed);
        assert_eq!(
            activity.deadline(&limits).0,
            start + Duration::from_secs(1) + limits.header_read
        );
        // It reached the router: no bound while it is answered.
        let in_flight = InFlight::new(Arc::clone(&activity));
        assert!(!activity.idle());
        assert!(!activity.deadline(&limits).1);
        assert_eq!(activity.arriving.load(Ordering::Relaxed), NEVER);
        // Answered: idle again, from the answer's last byte.
        drop(in_flight);
        assert!(activity.idle());
        let last = activity.last.load(Ordering::Relaxed);
        assert_eq!(
            activity.deadline(&limits).0,
            start + Duration::from_micros(last) + limits.idle
        );
        // Bytes read while idle start the header bound; an empty read (EOF) does not.
        activity.read(0);
        assert_eq!(activity.arriving.load(Ordering::Relaxed), NEVER);
        activity.read(10);
        assert_ne!(activity.arriving.load(Ordering::Relaxed), NEVER);
    }

    #[test]
    fn the_least_recently_active_idle_connection_gives_way() {
        let registry = Registry::default();
        let busy = Arc::new(Activity::new());
        let old = Arc::new(Activity::new());
        let recent = Arc::new(Activity::new());
        busy.in_flight.store(1, Ordering::Relaxed);
        recent.last.store(5_000_000, Ordering::Relaxed);
        for activity in [&busy, &old, &recent] {
            registry.add(Arc::clone(activity));
        }
        assert!(registry.evict_one());
        assert!(old.evicted.load(Ordering::Relaxed));
        assert!(registry.evict_one());
        assert!(recent.evicted.load(Ordering::Relaxed));
        // Only the busy one is left: nobody gives way.
        assert!(!registry.evict_one());
        assert!(!busy.evicted.load(Ordering::Relaxed));
    }
}
