//! Module implementing the HTTP server that Prometheus scrapes: hyper (HTTP/1.1) on a small tokio
//! runtime, optionally behind rustls and basic auth or a bearer token.
//!
//! The server lives inside a Python web app, so it must never panic, never block the app and keep
//! its resources bounded whatever clients do:
//!
//! - one thread (`last9-metrics`) runs every socket; rendering runs on at most [`MAX_RENDERS`]
//!   pool threads (`last9-metrics-render`), never holding the GIL;
//! - a client has [`HEAD_TIMEOUT`] to finish its TLS handshake and request head, and a whole
//!   connection lasts at most [`MAX_LIFETIME`]; each connection carries one request;
//! - at most [`max_connections`] connections are open; when a new one arrives at the cap, the
//!   oldest that has not yet sent a complete request (an idle or drip-feeding client) is closed
//!   to make room, so slow clients cannot lock out a scrape;
//! - at most [`MAX_HELD_RESPONSES`] rendered bodies wait for slow readers; past that, the
//!   oldest such reader is dropped.
//!
//! GET and HEAD go to the [`Handler`]; everything else is answered here.

use std::convert::Infallible;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use crate::delivery::access::Access;

mod connections;
mod listeners;
mod tls;

use connections::{Conn, Connections, HEAD, RENDERING};
pub(crate) use listeners::close_inherited_listeners;
pub use listeners::max_connections;
use listeners::unregister_listener;
pub use tls::{Tls, TlsError};

/// How long a client may take from connecting to the end of its request head (TLS included).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a connection may live, rendering and sending the response included.
pub const MAX_LIFETIME: Duration = Duration::from_secs(120);
/// Renders running at once; more scrapes wait for a turn.
pub const MAX_RENDERS: usize = 2;
/// Rendered bodies held for clients still reading them.
pub const MAX_HELD_RESPONSES: usize = 64;
/// Largest request head hyper buffers (it answers 431 past it).
const MAX_HEAD: usize = 16 * 1024;
/// Upper bound on open connections, lowered when the process may open few descriptors.
const CONNECTION_CAP: usize = 1024;
/// Pause after a failing `accept` (e.g. out of file descriptors) so the loop cannot spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Pending connections the kernel queues before `accept`.
const BACKLOG: u32 = 1024;
/// How often a standby server tries to take the port over.
const STANDBY_RETRY: Duration = Duration::from_secs(1);

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// What the server hands to the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrapeRequest<'a> {
    pub method: &'a str,
    /// The request path, without the query string.
    pub path: &'a str,
    /// The `Accept` header value (repeated headers are joined with `", "`).
    pub accept: Option<&'a str>,
    /// The `Accept-Encoding` header value (repeated headers are joined with `", "`).
    pub accept_encoding: Option<&'a str>,
}

pub use crate::encoding::ScrapeResponse;

/// Renders the response to a scrape; called on a render thread, possibly concurrently.
pub type Handler = Arc<dyn Fn(&ScrapeRequest<'_>) -> ScrapeResponse + Send + Sync>;

/// How the endpoint is protected: who may scrape, and TLS.
#[derive(Clone, Default)]
pub struct Protection {
    pub access: Access,
    pub tls: Option<Tls>,
}

/// A running metrics endpoint; stopped by [`MetricsServer::stop`] or on drop.
pub struct MetricsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
    /// The process that started it: a forked child has the struct but not the thread.
    owner: u32,
}

/// The limits tests shorten.
#[derive(Clone, Copy)]
struct Limits {
    head_timeout: Duration,
    connections: usize,
}

/// State shared by the server thread and its tasks.
struct Shared {
    handler: Handler,
    protection: Protection,
    head_timeout: Duration,
    /// Whether the port is bound (a standby server may not have it yet).
    bound: AtomicBool,
    stopped: AtomicBool,
    /// The listening socket's descriptor while it is registered for closing in forked children.
    listener_fd: AtomicI32,
    renders: Semaphore,
    connections: Connections,
}

/// Registers the listener for closing in forked children, and marks the server as serving.
fn register_listener(listener: &TcpListener, shared: &Shared) {
    let fd = listener.as_raw_fd();
    shared.listener_fd.store(fd, Ordering::SeqCst);
    shared.bound.store(true, Ordering::SeqCst);
    listeners::register_listener(fd);
}

impl MetricsServer {
    /// Binds `addr:port` (port 0 → an ephemeral port; addr may be `"0.0.0.0"`, `"127.0.0.1"`,
    /// `"::"`, `"[::1]"` or a host name) and serves on a thread named `last9-metrics`.
    ///
    /// # Errors
    ///
    /// Returns the bind or thread-spawn error (address in use, unresolvable or non-local
    /// address); it never panics.
    pub fn start(addr: &str, port: u16, handler: Handler) -> io::Result<MetricsServer> {
        Self::start_with(addr, port, handler, Protection::default(), false)
    }

    /// Like [`MetricsServer::start`], but when the port is taken (by another worker of the same
    /// server, say) it waits in the background and takes the port over once it is free, trying
    /// every second. [`MetricsServer::is_serving`] tells which happened.
    ///
    /// # Errors
    ///
    /// Any bind error other than "address in use".
    pub fn start_or_standby(addr: &str, port: u16, handler: Handler) -> io::Result<MetricsServer> {
        Self::start_with(addr, port, handler, Protection::default(), true)
    }

    /// [`MetricsServer::start`] or, with `standby`, [`MetricsServer::start_or_standby`], with
    /// the endpoint protected as `protection` says.
    pub fn start_with(
        addr: &str,
        port: u16,
        handler: Handler,
        protection: Protection,
        standby: bool,
    ) -> io::Result<MetricsServer> {
        let limits = Limits {
            head_timeout: HEAD_TIMEOUT,
            connections: max_connections(),
        };
        Self::start_inner(addr, port, handler, protection, standby, limits)
    }

    fn start_inner(
        addr: &str,
        port: u16,
        handler: Handler,
        protection: Protection,
        standby: bool,
        limits: Limits,
    ) -> io::Result<MetricsServer> {
        // The child of a fork must close this server's listener (see `close_inherited_listeners`).
        crate::store::on_fork_in_child(close_inherited_listeners);
        crate::store::install_fork_handlers();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .max_blocking_threads(MAX_RENDERS)
            .thread_name("last9-metrics-render")
            .build()?;
        let shared = Arc::new(Shared {
            handler,
            protection,
            head_timeout: limits.head_timeout,
            bound: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            listener_fd: AtomicI32::new(-1),
            renders: Semaphore::new(MAX_RENDERS),
            connections: Connections::new(limits.connections),
        });
        let targets = resolve(addr, port)?;
        // Bind on the caller's thread, so that errors are returned from here.
        let bound = {
            let _context = runtime.enter();
            bind_first(&targets)
        };
        let (listener, local) = match bound {
            Ok(listener) => {
                let local = listener.local_addr()?;
                (Some(listener), local)
            }
            Err(e) if standby && port != 0 && e.kind() == ErrorKind::AddrInUse => (None, targets[0]),
            Err(e) => return Err(e),
        };
        let (stop, stopped) = watch::channel(false);
        let task_shared = Arc::clone(&shared);
        let thread_name = if listener.is_some() {
            "last9-metrics"
        } else {
            "last9-metrics-standby"
        };
        if let Some(listener) = &listener {
            register_listener(listener, &shared);
        }
        let thread_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new().name(thread_name.into()).spawn(move || {
            // A bug down here must cost the metrics endpoint, never the app.
            let served = panic::catch_unwind(AssertUnwindSafe(|| {
                runtime.block_on(async move {
                    let listener = match listener {
                        Some(listener) => listener,
                        None => match standby_until_free(targets[0], &task_shared, stopped.clone()).await {
                            Some(listener) => listener,
                            None => return,
                        },
                    };
                    accept_loop(listener, task_shared, stopped).await;
                });
            }));
            if served.is_err() {
                thread_shared.stopped.store(true, Ordering::SeqCst);
                unregister_listener(thread_shared.listener_fd.swap(-1, Ordering::SeqCst));
            }
            // Connections still open are dropped (closed); a render in progress finishes
            // on its own thread and its result is discarded.
            runtime.shutdown_background();
        });
        let thread = match spawned {
            Ok(thread) => thread,
            Err(e) => {
                // The listener was dropped with the closure.
                unregister_listener(shared.listener_fd.swap(-1, Ordering::SeqCst));
                return Err(e);
            }
        };
        Ok(MetricsServer {
            addr: local,
            shared,
            stop,
            thread: Some(thread),
            owner: crate::store::pid(),
        })
    }

    /// Whether this server has the port (false while a standby server waits for it).
    pub fn is_serving(&self) -> bool {
        self.shared.bound.load(Ordering::SeqCst) && !self.shared.stopped.load(Ordering::SeqCst)
    }

    /// The bound address (tests use the port).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and joins the thread (used by tests; also on Drop). Open connections are
    /// closed at once. Calling it again is a no-op.
    pub fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        if self.owner != crate::store::pid() {
            // A forked child: the thread was the parent's and is not here to join.
            std::mem::forget(thread);
            return;
        }
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.stop.send_replace(true);
        // A handler that stops its own server would otherwise wait for itself.
        let on_server_thread = thread::current()
            .name()
            .is_some_and(|n| n.starts_with("last9-metrics"));
        if !on_server_thread {
            let _ = thread.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The addresses `addr:port` names; `[::1]` is accepted as well as `::1`.
fn resolve(addr: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let host = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    let targets: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    if targets.is_empty() {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            "address resolves to nothing",
        ));
    }
    Ok(targets)
}

/// Binds the first address that can be bound; the last error otherwise.
fn bind_first(targets: &[SocketAddr]) -> io::Result<TcpListener> {
    let mut last = io::Error::new(ErrorKind::InvalidInput, "no address");
    for &target in targets {
        match bind(target) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A listening socket with a backlog deep enough for a burst of clients. Needs a runtime context.
fn bind(target: SocketAddr) -> io::Result<TcpListener> {
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As std does on Unix: a restarted app can rebind while old connections are in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(target)?;
    socket.listen(BACKLOG)
}

/// Waits for the port to be free, then returns it bound; `None` if stopped first.
async fn standby_until_free(
    target: SocketAddr,
    shared: &Shared,
    mut stopped: watch::Receiver<bool>,
) -> Option<TcpListener> {
    loop {
        tokio::select! {
            () = tokio::time::sleep(STANDBY_RETRY) => {}
            _ = stopped.wait_for(|stop| *stop) => return None,
        }
        if let Ok(listener) = bind(target) {
            register_listener(&listener, shared);
            return Some(listener);
        }
    }
}

/// Accepts connections until stopped, each served by its own task.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.wait_for(|stop| *stop) => break,
        };
        match accepted {
            Ok((stream, _)) => {
                // At the cap with nobody to shed, the new connection is closed at once.
                let Some((conn, shed)) = shared.connections.admit() else {
                    continue;
                };
                tokio::spawn(connection(stream, Arc::clone(&shared), conn));
                if shed {
                    // Let the shed connection close before accepting more, so the descriptors
                    // in use never run past the cap while clients pour in.
                    tokio::task::yield_now().await;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::ConnectionAborted) => {}
            Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
        }
    }
    unregister_listener(shared.listener_fd.swap(-1, Ordering::SeqCst));
}

/// Serves one connection within its deadlines, until done, shed or timed out.
async fn connection(stream: TcpStream, shared: Arc<Shared>, conn: Arc<Conn>) {
    let _ = stream.set_nodelay(true);
    let started = Instant::now();
    let head_deadline = started + shared.head_timeout;
    let end = started + MAX_LIFETIME;
    let exchange = exchange(stream, Arc::clone(&shared), Arc::clone(&conn));
    tokio::pin!(exchange);
    let mut deadline = head_deadline;
    loop {
        tokio::select! {
            () = &mut exchange => break,
            () = conn.shed.notified() => break,
            () = tokio::time::sleep_until(deadline) => {
                // Past the head deadline only a connection that is still reading its head ends.
                if deadline == end || conn.phase.load(Ordering::SeqCst) == HEAD {
                    break;
                }
                deadline = end;
            }
        }
    }
    shared.connections.remove(&conn);
}

/// TLS handshake if configured, then one HTTP/1.1 request and response.
async fn exchange(stream: TcpStream, shared: Arc<Shared>, conn: Arc<Conn>) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(shared.head_timeout)
        .keep_alive(false)
        .max_buf_size(MAX_HEAD);
    let service_shared = Arc::clone(&shared);
    let service = service_fn(move |request| respond(request, Arc::clone(&service_shared), Arc::clone(&conn)));
    // Errors (a client that leaves, a bad request hyper already answered) end the connection.
    match &shared.protection.tls {
        None => {
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        }
        Some(tls) => {
            if let Ok(stream) = tls.acceptor.accept(stream).await {
                let _ = http.serve_connection(TokioIo::new(stream), service).await;
            }
        }
    }
}

type Body = Full<Bytes>;

/// Answers one request: 405, 401, or the handler's response rendered on a render thread.
async fn respond(
    request: Request<Incoming>,
    shared: Arc<Shared>,
    conn: Arc<Conn>,
) -> Result<Response<Body>, Infallible> {
    conn.phase.store(RENDERING, Ordering::SeqCst);
    let head_only = match *request.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET and HEAD are supported\n",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Ok(response);
        }
    };
    let access = &shared.protection.access;
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    if !access.allows(authorization) {
        let mut response = text(StatusCode::UNAUTHORIZED, "credentials required\n");
        if let Some(challenge) = access.challenge() {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        return Ok(response);
    }
    let path = request.uri().path().to_owned();
    let accept = joined(&request, header::ACCEPT);
    let accept_encoding = joined(&request, header::ACCEPT_ENCODING);
    let method = if head_only { "HEAD" } else { "GET" };

    // The semaphore is never closed, so acquiring only fails if it were; answer 503 then.
    let Ok(turn) = shared.renders.acquire().await else {
        return Ok(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics server is stopping\n",
        ));
    };
    let handler = Arc::clone(&shared.handler);
    let rendered = tokio::task::spawn_blocking(move || {
        let scrape = ScrapeRequest {
            method,
            path: &path,
            accept: accept.as_deref(),
            accept_encoding: accept_encoding.as_deref(),
        };
        // A bug in rendering must cost one scrape, not the app's process or this server.
        panic::catch_unwind(AssertUnwindSafe(|| handler(&scrape))).ok()
    })
    .await;
    drop(turn);
    let response = match rendered {
        Ok(Some(response)) => from_handler(response, head_only),
        _ => text(StatusCode::INTERNAL_SERVER_ERROR, "metrics handler panicked\n"),
    };
    shared.connections.sending(&conn);
    Ok(response)
}

/// Repeated headers mean the same as one comma-joined header (RFC 9110 §5.3); values that are
/// not UTF-8 are skipped.
fn joined(request: &Request<Incoming>, name: header::HeaderName) -> Option<String> {
    let mut values = request
        .headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let first = values.next()?.to_owned();
    Some(values.fold(first, |mut all, v| {
        all.push_str(", ");
        all.push_str(v);
        all
    }))
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
    response
}

/// The handler's answer as an HTTP response; only a valid final status and header values reach
/// the wire, anything else is a 500.
fn from_handler(response: ScrapeResponse, head_only: bool) -> Response<Body> {
    let status = StatusCode::from_u16(response.status)
        .ok()
        .filter(|s| s.as_u16() >= 200);
    let content_type = HeaderValue::from_str(response.content_type).ok();
    let encoding = response.content_encoding.map(HeaderValue::from_str);
    let (Some(status), Some(content_type), None | Some(Ok(_))) = (status, content_type, &encoding) else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "invalid response from metrics handler\n",
        );
    };
    let length = response.body.len();
    let body = if head_only {
        Full::default()
    } else {
        Full::new(Bytes::from(response.body))
    };
    let mut reply = Response::new(body);
    *reply.status_mut() = status;
    let headers = reply.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    if let Some(Ok(encoding)) = encoding {
        headers.insert(header::CONTENT_ENCODING, encoding);
    }
    // The body depends on both, so caches must key on them (as the app's own path says too).
    headers.insert(header::VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
    if response.content_type.starts_with("text/html") || response.content_type == "application/json" {
        // The live page and its data (see `delivery::live`).
        for (name, value) in crate::delivery::live::HEADERS {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if head_only && status != StatusCode::NO_CONTENT {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream as StdStream;
    use std::path::Path;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant as StdInstant;

    const SHORT: Duration = Duration::from_millis(300);

    /// Answers with a line describing the request, so tests can see what the handler got.
    fn echo_handler() -> Handler {
        Arc::new(|req: &ScrapeRequest<'_>| ScrapeResponse {
            status: if req.path == "/metrics" { 200 } else { 404 },
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            content_encoding: None,
            body: format!(
                "{} {} {:?} {:?}\n",
                req.method, req.path, req.accept, req.accept_encoding
            )
            .into_bytes(),
        })
    }

    fn start_limited(handler: Handler, protection: Protection, connections: usize) -> MetricsServer {
        let limits = Limits {
            head_timeout: SHORT,
            connections,
        };
        MetricsServer::start_inner("127.0.0.1", 0, handler, protection, false, limits).unwrap()
    }

    fn start(handler: Handler) -> MetricsServer {
        start_limited(handler, Protection::default(), CONNECTION_CAP)
    }

    fn connect(server: &MetricsServer) -> StdStream {
        let stream = StdStream::connect(server.local_addr()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream
    }

    /// Sends `raw` and returns the status line, the headers (names lower-cased, sorted, without
    /// `date`) and the body.
    fn exchange(server: &MetricsServer, raw: &[u8]) -> (String, Vec<(String, String)>, Vec<u8>) {
        let mut stream = connect(server);
        stream.write_all(raw).unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        split(&response)
    }

    fn split(response: &[u8]) -> (String, Vec<(String, String)>, Vec<u8>) {
        let end = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(response)));
        let head = String::from_utf8(response[..end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().to_owned();
        let mut headers: Vec<(String, String)> = lines
            .map(|l| {
                let (name, value) = l.split_once(": ").unwrap();
                (name.to_ascii_lowercase(), value.to_owned())
            })
            .filter(|(name, _)| name != "date")
            .collect();
        headers.sort();
        (status, headers, response[end + 4..].to_vec())
    }

    fn get(server: &MetricsServer, path: &str) -> (String, Vec<(String, String)>, Vec<u8>) {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        exchange(server, raw.as_bytes())
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<_> = list
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn get_returns_handler_body_with_exact_headers() {
        let server = start(echo_handler());
        let (status, headers, body) = get(&server, "/metrics");
        let expected_body = "GET /metrics None None\n";
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(
            headers,
            pairs(&[
                ("content-type", "text/plain; version=0.0.4; charset=utf-8"),
                ("content-length", &expected_body.len().to_string()),
                ("vary", "Accept, Accept-Encoding"),
                ("connection", "close"),
            ])
        );
        assert_eq!(body, expected_body.as_bytes());
    }

    #[test]
    fn content_encoding_is_sent_when_the_handler_sets_it() {
        let server = start(Arc::new(|_: &ScrapeRequest<'_>| ScrapeResponse {
            status: 200,
            content_type: "text/plain",
            content_encoding: Some("gzip"),
            body: vec![0x1f, 0x8b, 0, 1],
        }));
        let (status, headers, body) = get(&server, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
        assert_eq!(header(&headers, "content-length"), Some("4"));
        assert_eq!(body, [0x1f, 0x8b, 0, 1]);
    }

    #[test]
    fn head_sends_get_headers_without_body() {
        let server = start(echo_handler());
        let (status, headers, body) = exchange(&server, b"HEAD /metrics HTTP/1.1\r\n\r\n");
        let would_be = "HEAD /metrics None None\n".len().to_string();
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(header(&headers, "content-length"), Some(would_be.as_str()));
        assert!(body.is_empty());
    }

    #[test]
    fn handler_status_passes_through() {
        let server = start(echo_handler());
        let (status, _, body) = get(&server, "/other");
        assert_eq!(status, "HTTP/1.1 404 Not Found");
        assert_eq!(body, b"GET /other None None\n");
    }

    #[test]
    fn other_methods_get_405_with_allow() {
        let server = start(echo_handler());
        let (status, headers, body) = exchange(
            &server,
            b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        );
        assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
        assert_eq!(header(&headers, "allow"), Some("GET, HEAD"));
        assert_eq!(body, b"only GET and HEAD are supported\n");
        // Methods are case-sensitive.
        let (status, _, _) = exchange(&server, b"get /metrics HTTP/1.1\r\n\r\n");
        assert!(status.starts_with("HTTP/1.1 405 "), "{status}");
    }

    #[test]
    fn query_string_and_absolute_form_are_reduced_to_the_path() {
        let server = start(echo_handler());
        let (status, _, body) = get(&server, "/metrics?name[]=up&x=1");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, b"GET /metrics None None\n");
        let (_, _, body) = get(&server, "http://host:9464/metrics?x=1");
        assert_eq!(body, b"GET /metrics None None\n");
    }

    #[test]
    fn repeated_headers_are_joined_and_names_are_case_insensitive() {
        let server = start(echo_handler());
        let (_, _, body) = exchange(
            &server,
            b"GET /metrics HTTP/1.1\r\naCCEPT:  application/openmetrics-text \r\n\
              ACCEPT-ENCODING:gzip\r\naccept-encoding: br\r\n\r\n",
        );
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "GET /metrics Some(\"application/openmetrics-text\") Some(\"gzip, br\")\n"
        );
    }

    #[test]
    fn oversized_head_is_refused() {
        let server = start(echo_handler());
        let mut raw = b"GET /metrics HTTP/1.1\r\n".to_vec();
        raw.extend_from_slice(format!("X-Big: {}\r\n\r\n", "a".repeat(4 * MAX_HEAD)).as_bytes());
        let (status, _, _) = exchange(&server, &raw);
        assert_eq!(status, "HTTP/1.1 431 Request Header Fields Too Large");
        // A large but acceptable head is served.
        let raw = format!(
            "GET /metrics HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(MAX_HEAD / 2)
        );
        let (status, _, _) = exchange(&server, raw.as_bytes());
        assert_eq!(status, "HTTP/1.1 200 OK");
    }

    #[test]
    fn malformed_requests_never_reach_the_handler() {
        let server = start(Arc::new(|_: &ScrapeRequest<'_>| {
            panic!("the handler saw a malformed request")
        }));
        let cases: &[&[u8]] = &[
            b"GET /metrics\r\n\r\n",
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nNo-Colon\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nAccept : */*\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nAccept: a\r\n folded\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nAccept: a\0b\r\n\r\n",
            b"GET /m\xffetrics HTTP/1.1\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        ];
        for raw in cases {
            let mut stream = connect(&server);
            stream.write_all(raw).unwrap();
            let mut response = Vec::new();
            let _ = stream.read_to_end(&mut response);
            let text = String::from_utf8_lossy(&response);
            assert!(
                text.starts_with("HTTP/1.1 400 Bad Request\r\n"),
                "{:?} -> {text}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn silent_client_does_not_block_another_client() {
        let server = start(echo_handler());
        let _silent = connect(&server);
        let (status, _, _) = get(&server, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
    }

    #[test]
    fn silent_client_is_disconnected_after_the_head_timeout() {
        let server = start(echo_handler());
        let mut silent = connect(&server);
        let started = StdInstant::now();
        let mut buf = [0u8; 64];
        // Closed without an answer (hyper may also send 408 first).
        let _ = silent.read(&mut buf);
        let waited = started.elapsed();
        assert!(waited >= SHORT - Duration::from_millis(50), "{waited:?}");
        assert!(waited < SHORT + Duration::from_secs(2), "{waited:?}");
    }

    #[test]
    fn dripping_client_is_cut_off_at_the_deadline() {
        let server = start(echo_handler());
        let mut client = connect(&server);
        let started = StdInstant::now();
        // One byte every 50 ms never finishes the head; the deadline is for the whole head.
        for &b in b"GET /metrics HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
            if client.write_all(&[b]).is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest);
        assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn at_the_cap_the_oldest_idle_connections_are_shed_and_scrapes_succeed() {
        let cap = 16;
        // A head timeout far longer than the test: only shedding can make room.
        let limits = Limits {
            head_timeout: Duration::from_secs(60),
            connections: cap,
        };
        let server = MetricsServer::start_inner(
            "127.0.0.1",
            0,
            echo_handler(),
            Protection::default(),
            false,
            limits,
        )
        .unwrap();
        // Four times the cap of clients that send half a head and then nothing.
        let idle: Vec<StdStream> = (0..4 * cap)
            .map(|_| {
                let mut stream = connect(&server);
                stream.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: a").unwrap();
                stream
            })
            .collect();
        for _ in 0..10 {
            let (status, _, _) = get(&server, "/metrics");
            assert_eq!(status, "HTTP/1.1 200 OK");
        }
        assert!(server.shared.connections.len() <= cap);
        // The first clients were shed: their sockets read end-of-file.
        let mut first = idle.into_iter().next().unwrap();
        let mut buf = [0u8; 16];
        // End of file, or a reset since the server closed with the half head unread.
        let closed = first.read(&mut buf);
        assert!(
            matches!(&closed, Ok(0)) || matches!(&closed, Err(e) if e.kind() == ErrorKind::ConnectionReset),
            "{closed:?}"
        );
        // The newest idle client is still connected: reading it times out.
        let mut newest = connect(&server);
        newest.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let waited = newest.read(&mut buf).unwrap_err().kind();
        assert!(
            matches!(waited, ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{waited:?}"
        );
    }

    #[test]
    fn rendering_is_bounded_and_rendering_connections_are_never_shed() {
        let cap = 16;
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let slow: Handler = {
            let (running, most) = (Arc::clone(&running), Arc::clone(&most));
            Arc::new(move |_: &ScrapeRequest<'_>| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(100));
                running.fetch_sub(1, Ordering::SeqCst);
                ScrapeResponse {
                    status: 200,
                    content_type: "text/plain",
                    content_encoding: None,
                    body: b"ok".to_vec(),
                }
            })
        };
        let server = start_limited(slow, Protection::default(), cap);
        let addr = server.local_addr();
        let scrapes: Vec<_> = (0..8)
            .map(|_| {
                thread::spawn(move || {
                    let mut stream = StdStream::connect(addr).unwrap();
                    stream.write_all(b"GET /slow HTTP/1.1\r\n\r\n").unwrap();
                    let mut response = Vec::new();
                    stream.read_to_end(&mut response).unwrap();
                    split(&response).0
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(100));
        // A flood of idle clients while the scrapes render or wait for a turn.
        let _idle: Vec<StdStream> = (0..3 * cap).map(|_| connect(&server)).collect();
        for scrape in scrapes {
            assert_eq!(scrape.join().unwrap(), "HTTP/1.1 200 OK");
        }
        assert_eq!(most.load(Ordering::SeqCst), MAX_RENDERS);
    }

    #[test]
    fn panicking_handler_gets_500_and_server_keeps_serving() {
        let server = start(Arc::new(|req: &ScrapeRequest<'_>| {
            if req.path == "/boom" {
                panic!("handler bug");
            }
            ScrapeResponse {
                status: 200,
                content_type: "text/plain",
                content_encoding: None,
                body: b"ok".to_vec(),
            }
        }));
        let (status, _, _) = get(&server, "/boom");
        assert_eq!(status, "HTTP/1.1 500 Internal Server Error");
        let (status, _, body) = get(&server, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, b"ok");
    }

    #[test]
    fn invalid_handler_response_becomes_500() {
        let server = start(Arc::new(|req: &ScrapeRequest<'_>| ScrapeResponse {
            status: if req.path == "/status" { 42 } else { 200 },
            content_type: "text/plain\r\nX-Injected: 1",
            content_encoding: None,
            body: Vec::new(),
        }));
        for path in ["/status", "/header"] {
            let (status, headers, _) = get(&server, path);
            assert!(status.starts_with("HTTP/1.1 500 "), "{status}");
            assert!(header(&headers, "x-injected").is_none());
        }
    }

    #[test]
    fn client_leaving_mid_response_does_not_affect_the_server() {
        let big = vec![b'x'; 32 * 1024 * 1024];
        let server = start(Arc::new(move |_: &ScrapeRequest<'_>| ScrapeResponse {
            status: 200,
            content_type: "text/plain",
            content_encoding: None,
            body: big.clone(),
        }));
        for _ in 0..3 {
            let mut client = connect(&server);
            client.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
            let mut some = [0u8; 1024];
            client.read_exact(&mut some).unwrap();
        }
        let (status, _, body) = get(&server, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body.len(), 32 * 1024 * 1024);
    }

    #[test]
    fn basic_auth_is_required_when_configured() {
        let access = Access::from_settings(Some("prom"), Some("s3cret"), None, "LAST9_METRICS").unwrap();
        let protection = Protection { access, tls: None };
        let server = start_limited(echo_handler(), protection, CONNECTION_CAP);
        let (status, headers, _) = get(&server, "/metrics");
        assert_eq!(status, "HTTP/1.1 401 Unauthorized");
        assert_eq!(
            header(&headers, "www-authenticate"),
            Some("Basic realm=\"metrics\", charset=\"UTF-8\"")
        );
        let wrong = b"GET /metrics HTTP/1.1\r\nAuthorization: Basic cHJvbTp3cm9uZw==\r\n\r\n";
        assert_eq!(exchange(&server, wrong).0, "HTTP/1.1 401 Unauthorized");
        // base64("prom:s3cret")
        let right = b"GET /metrics HTTP/1.1\r\nAuthorization: Basic cHJvbTpzM2NyZXQ=\r\n\r\n";
        assert_eq!(exchange(&server, right).0, "HTTP/1.1 200 OK");
    }

    #[test]
    fn bearer_token_is_required_when_configured() {
        let access = Access::from_settings(None, None, Some("tok-1"), "LAST9_METRICS").unwrap();
        let server = start_limited(echo_handler(), Protection { access, tls: None }, CONNECTION_CAP);
        let (status, headers, _) = get(&server, "/metrics");
        assert_eq!(status, "HTTP/1.1 401 Unauthorized");
        assert_eq!(
            header(&headers, "www-authenticate"),
            Some("Bearer realm=\"metrics\"")
        );
        let right = b"GET /metrics HTTP/1.1\r\nAuthorization: Bearer tok-1\r\n\r\n";
        assert_eq!(exchange(&server, right).0, "HTTP/1.1 200 OK");
    }

    #[test]
    fn bad_tls_files_name_the_setting() {
        let dir = std::env::temp_dir().join(format!("last9-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let missing = dir.join("missing.pem");
        let err = |cert: &Path, key: &Path, ca: Option<&Path>| {
            Tls::from_files(cert, key, ca, "LAST9_METRICS").err().unwrap().0
        };
        assert!(err(&missing, &junk, None).starts_with("LAST9_METRICS_TLS_CERT_FILE: cannot read"));
        assert!(err(&junk, &junk, None).starts_with("LAST9_METRICS_TLS_CERT_FILE: no certificate"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn standby_server_takes_the_port_when_it_comes_free() {
        let mut first = start(echo_handler());
        let port = first.local_addr().port();
        let standby = MetricsServer::start_or_standby("127.0.0.1", port, echo_handler()).unwrap();
        assert!(!standby.is_serving());
        first.stop();
        let deadline = StdInstant::now() + Duration::from_secs(10);
        while !standby.is_serving() {
            assert!(
                StdInstant::now() < deadline,
                "the standby server never took the port"
            );
            thread::sleep(Duration::from_millis(50));
        }
        let (status, _, _) = get(&standby, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
    }

    #[test]
    fn stop_returns_promptly_even_with_a_client_connected() {
        // The default (long) timeout: stop must not wait for it.
        let mut server = MetricsServer::start("127.0.0.1", 0, echo_handler()).unwrap();
        let mut silent = connect(&server);
        thread::sleep(Duration::from_millis(50));
        let started = StdInstant::now();
        server.stop();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(!server.is_serving());
        assert!(StdStream::connect(server.local_addr()).is_err());
        // The open connection was closed too.
        let mut buf = [0u8; 8];
        assert!(matches!(silent.read(&mut buf), Ok(0) | Err(_)));
        server.stop();
    }

    #[test]
    fn stop_on_a_wildcard_address_returns_promptly() {
        let mut server = MetricsServer::start("0.0.0.0", 0, echo_handler()).unwrap();
        let started = StdInstant::now();
        server.stop();
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn port_zero_binds_a_real_port() {
        let server = MetricsServer::start("localhost", 0, echo_handler()).unwrap();
        assert_ne!(server.local_addr().port(), 0);
        let (status, _, _) = get(&server, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
    }

    #[test]
    fn ipv6_addresses_are_accepted_when_available() {
        // Some sandboxes have no IPv6; binding then fails with an error, which is also fine.
        for addr in ["::", "[::1]"] {
            if let Ok(mut server) = MetricsServer::start(addr, 0, echo_handler()) {
                let port = server.local_addr().port();
                let mut stream = StdStream::connect(("::1", port)).unwrap();
                stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
                let mut response = Vec::new();
                stream.read_to_end(&mut response).unwrap();
                assert_eq!(split(&response).0, "HTTP/1.1 200 OK");
                server.stop();
            }
        }
    }

    #[test]
    fn bind_errors_are_returned() {
        let server = start(echo_handler());
        let port = server.local_addr().port();
        let in_use = MetricsServer::start("127.0.0.1", port, echo_handler());
        assert_eq!(in_use.err().unwrap().kind(), ErrorKind::AddrInUse);
        // 192.0.2.0/24 is reserved for documentation, so it is never a local address.
        assert!(MetricsServer::start("192.0.2.1", 0, echo_handler()).is_err());
    }

    #[test]
    fn server_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<MetricsServer>();
    }

    #[test]
    fn the_connection_cap_follows_the_descriptor_limit() {
        let cap = max_connections();
        assert!((16..=CONNECTION_CAP).contains(&cap), "{cap}");
    }
}
