//! The API listener over real TCP: connections that stay silent, that send their headers
//! too slowly or that idle between requests are closed by the server, and beyond the
//! connection cap a new connection is still answered (an idle one gives way).
//!
//! Every wait is for an event (the server closing a socket, an answer); the outer bound of
//! [`SAFETY`] only keeps a broken server from hanging the test run.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use server::http::AppState;
use support::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long a step may take before the test gives up: far beyond every limit configured.
const SAFETY: Duration = Duration::from_secs(60);

/// A server on a free loopback port with its limits changed by `change`; the sender stops it.
async fn serve(
    name: &str,
    change: impl FnOnce(&mut server::settings::Limits),
) -> (
    SocketAddr,
    AppState,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    TempDir,
) {
    let dir = TempDir::new(name);
    let mut settings = support::settings(&dir);
    change(&mut settings.limits);
    let state = server::serve::open(settings).await.expect("opens");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let addr = listener.local_addr().expect("an address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server::serve::run(state.clone(), listener, None, async {
        let _ = stopped.await;
    }));
    (addr, state, stop, served, dir)
}

/// Sends `GET path` on `stream` and reads the answer's head and body: the status code.
async fn get(stream: &mut TcpStream, path: &str) -> u16 {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .expect("send a request");
    let mut buf = Vec::new();
    let mut chunk = [0_u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = tokio::time::timeout(SAFETY, stream.read(&mut chunk))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(
            n > 0,
            "the server closed the connection instead of answering"
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().expect("a length"));
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.expect("read the body");
        assert!(n > 0, "the body was cut short");
        buf.extend_from_slice(&chunk[..n]);
    }
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line")
}

/// Waits until the server closes `stream`: true when it did (end of stream or reset), false
/// when it is still open after [`SAFETY`].
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut chunk = [0_u8; 1024];
    let waited = tokio::time::timeout(SAFETY, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    waited.is_ok()
}

#[tokio::test]
async fn idle_and_slow_connections_are_closed_by_the_server() {
    let (addr, state, stop, served, _dir) = serve("conn-timeouts", |l| {
        // Short, but long enough for a loaded machine to read a prompt request in time.
        l.idle_seconds = 2;
        l.header_read_seconds = 2;
    })
    .await;
    let mut silent = Vec::new();
    let mut slow = Vec::new();
    let mut kept_alive = Vec::new();
    for _ in 0..10 {
        silent.push(TcpStream::connect(addr).await.expect("connect"));
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        // Headers that never end.
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: ")
            .await
            .expect("send part of a request");
        slow.push(stream);
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        assert_eq!(get(&mut stream, "/healthz").await, 200);
        kept_alive.push(stream);
    }
    for (kind, streams) in [
        ("silent", &mut silent),
        ("slow-header", &mut slow),
        ("idle keep-alive", &mut kept_alive),
    ] {
        for stream in streams.iter_mut() {
            assert!(
                closed_by_server(stream).await,
                "a {kind} connection was left open"
            );
        }
    }
    // The server still answers, and stops cleanly.
    let mut fresh = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(get(&mut fresh, "/healthz").await, 200);
    drop(fresh);
    stop.send(()).expect("the server is running");
    served.await.expect("server task").expect("clean shutdown");
    state.store.close().await;
}

#[tokio::test]
async fn beyond_the_connection_cap_an_idle_connection_gives_way() {
    let (addr, state, stop, served, _dir) = serve("conn-cap", |l| {
        l.max_connections = 4;
        // Nothing times out during the test: only the cap closes connections.
        l.idle_seconds = 3600;
        l.header_read_seconds = 3600;
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        assert_eq!(get(&mut stream, "/healthz").await, 200);
        open.push(stream);
    }
    // A fifth client is answered at once, in the place of the least recently active idle
    // connection: the first one.
    let mut fifth = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(get(&mut fifth, "/healthz").await, 200);
    assert!(
        closed_by_server(&mut open[0]).await,
        "the oldest idle connection was not closed"
    );
    // The others still work.
    for stream in &mut open[1..] {
        assert_eq!(get(stream, "/healthz").await, 200);
    }
    drop(open);
    drop(fifth);
    stop.send(()).expect("the server is running");
    served.await.expect("server task").expect("clean shutdown");
    state.store.close().await;
}

#[test]
fn limits_must_be_in_range() {
    let refused = |key: &str, value: &str| {
        let env = [(format!("HEXABASE_LIMITS__{key}"), value.to_owned())].into();
        let error = server::settings::Settings::load(None, &env).unwrap_err();
        format!("{error:#}")
    };
    for key in ["MAX_CONNECTIONS", "IDLE_SECONDS", "HEADER_READ_SECONDS"] {
        let error = refused(key, "0");
        let want = format!("limits.{}: must be at least 1", key.to_lowercase());
        assert!(error.starts_with(&want), "{error}");
    }
    let error = refused("MAX_CONNECTIONS", "2000000");
    assert!(
        error.starts_with("limits.max_connections: must be at most 1000000"),
        "{error}"
    );
}
