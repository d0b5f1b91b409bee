//! Module implementing the small HTTP/1.1 server that Prometheus scrapes.
//!
//! The server lives inside a Python web app, so it must never panic, never block the app and keep
//! its resources bounded: one accept thread (`last9-metrics`), at most `MAX_CONNECTIONS`
//! short-lived connection threads, a 16 KiB limit on the request head, and deadlines on every
//! read and write. Each connection carries exactly one request and is closed after the response.
//! GET and HEAD go to the [`Handler`]; everything else is answered here.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Largest accepted request head (request line plus headers).
const MAX_HEAD: usize = 16 * 1024;
/// How long a client may take to send its request head, and may stall while reading the response.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound on the time spent writing one response, as a multiple of the timeout.
const WRITE_TOTAL_FACTOR: u32 = 12;
/// Connections served at once; more are answered with 503 straight away.
const MAX_CONNECTIONS: usize = 4;
/// Longest single blocking read or write, so connection threads notice `stop()` quickly.
const POLL: Duration = Duration::from_millis(100);
/// Pause after a failing `accept` (e.g. out of file descriptors) so the loop cannot spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long, and how much, to drain from a client after the response (see `linger`).
const LINGER: Duration = Duration::from_secs(1);
const LINGER_MAX_BYTES: usize = 64 * 1024;

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

/// What the handler returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeResponse {
    pub status: u16,
    pub content_type: &'static str,
    /// For example `Some("gzip")`.
    pub content_encoding: Option<&'static str>,
    pub body: Vec<u8>,
}

/// Renders the response to a scrape; called on a connection thread, possibly concurrently.
pub type Handler = Arc<dyn Fn(&ScrapeRequest<'_>) -> ScrapeResponse + Send + Sync>;

/// How often a standby server tries to take the port over.
const STANDBY_RETRY: Duration = Duration::from_secs(1);

/// A running metrics endpoint; stopped by [`MetricsServer::stop`] or on drop.
pub struct MetricsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// The process that started it: a forked child has the struct but not the thread.
    owner: u32,
}

/// State shared by the accept thread and the connection threads.
struct Shared {
    handler: Handler,
    timeout: Duration,
    stop: AtomicBool,
    /// Whether the port is bound (a standby server may not have it yet).
    bound: AtomicBool,
}

/// Listening sockets of this process, closed in a forked child: the child has no accept thread,
/// and a copy of the socket kept open there would leave scrapes hanging after the owner dies.
static LISTENERS: [AtomicI32; 8] = [const { AtomicI32::new(-1) }; 8];

fn register_listener(listener: &TcpListener) {
    let fd = listener.as_raw_fd();
    for slot in &LISTENERS {
        if slot
            .compare_exchange(-1, fd, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return;
        }
    }
}

fn unregister_listener(listener: &TcpListener) {
    let fd = listener.as_raw_fd();
    for slot in &LISTENERS {
        let _ = slot.compare_exchange(fd, -1, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// Closes the listening sockets inherited from the parent. Called in the child of a fork, where
/// only async-signal-safe work is allowed.
pub(crate) fn close_inherited_listeners() {
    for slot in &LISTENERS {
        let fd = slot.swap(-1, Ordering::SeqCst);
        if fd >= 0 {
            // SAFETY: the descriptor was the parent's listener; nothing else in the child uses it.
            unsafe { libc::close(fd) };
        }
    }
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
        Self::start_with_timeout(addr, port, handler, DEFAULT_TIMEOUT)
    }

    /// Like [`MetricsServer::start`], with a custom read/write timeout (tests use a short one).
    pub(crate) fn start_with_timeout(
        addr: &str,
        port: u16,
        handler: Handler,
        timeout: Duration,
    ) -> io::Result<MetricsServer> {
        // `ToSocketAddrs` wants a bare IPv6 literal; accept the bracketed URL form too.
        let host = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr);
        let listener = TcpListener::bind((host, port))?;
        let local = listener.local_addr()?;
        let shared = Self::shared(handler, timeout);
        shared.bound.store(true, Ordering::SeqCst);
        register_listener(&listener);
        let accept_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("last9-metrics".into())
            .spawn(move || accept_loop(listener, accept_shared))?;
        Ok(MetricsServer {
            addr: local,
            shared,
            thread: Some(thread),
            owner: crate::store::pid(),
        })
    }

    fn shared(handler: Handler, timeout: Duration) -> Arc<Shared> {
        Arc::new(Shared {
            handler,
            // Clamped so deadline arithmetic can never overflow.
            timeout: timeout.clamp(Duration::from_millis(1), Duration::from_secs(3600)),
            stop: AtomicBool::new(false),
            bound: AtomicBool::new(false),
        })
    }

    /// Like [`MetricsServer::start`], but when the port is taken (by another worker of the same
    /// server, say) it waits in the background and takes the port over once it is free, trying
    /// every second. [`MetricsServer::is_serving`] tells which happened.
    ///
    /// # Errors
    ///
    /// Any bind error other than "address in use".
    pub fn start_or_standby(addr: &str, port: u16, handler: Handler) -> io::Result<MetricsServer> {
        match Self::start(addr, port, handler.clone()) {
            Err(e) if e.kind() == ErrorKind::AddrInUse && port != 0 => {}
            other => return other,
        }
        let host = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr)
            .to_string();
        let target = (host.as_str(), port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, "address resolves to nothing"))?;
        let shared = Self::shared(handler, DEFAULT_TIMEOUT);
        let standby_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("last9-metrics-standby".into())
            .spawn(move || standby_loop(target, standby_shared))?;
        Ok(MetricsServer {
            addr: target,
            shared,
            thread: Some(thread),
            owner: crate::store::pid(),
        })
    }

    /// Whether this server has the port (false while a standby server waits for it).
    pub fn is_serving(&self) -> bool {
        self.shared.bound.load(Ordering::SeqCst) && !self.shared.stop.load(Ordering::SeqCst)
    }

    /// The bound address (tests use the port).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and joins the thread (used by tests; also on Drop).
    ///
    /// Connection threads see the stop flag within `POLL`, so this returns promptly unless the
    /// handler itself is slow. Calling it again is a no-op.
    pub fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        if self.owner != crate::store::pid() {
            // A forked child: the thread was the parent's and is not here to join.
            std::mem::forget(thread);
            return;
        }
        self.shared.stop.store(true, Ordering::SeqCst);
        if !self.shared.bound.load(Ordering::SeqCst) {
            // A standby server notices the flag within a poll interval, unless it binds first.
            while !thread.is_finished() && !self.shared.bound.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
                return;
            }
        }
        // `accept` has no timeout; a throwaway connection to ourselves wakes it to see the flag.
        // If that fails, joining could hang forever, so the thread is left to exit on its own
        // at the next connection.
        let woke = thread.is_finished() || wake(self.addr);
        // A handler that stops its own server would otherwise wait for itself.
        let on_server_thread = thread::current()
            .name()
            .is_some_and(|n| n.starts_with("last9-metrics"));
        if woke && !on_server_thread {
            let _ = thread.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Connects to the server's own address so a blocked `accept` returns.
fn wake(addr: SocketAddr) -> bool {
    let connect = |to: SocketAddr| TcpStream::connect_timeout(&to, Duration::from_secs(1)).is_ok();
    let port = addr.port();
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => connect((Ipv4Addr::LOCALHOST, port).into()),
        // A dual-stack "::" listener is reachable over either loopback.
        IpAddr::V6(ip) if ip.is_unspecified() => {
            connect((Ipv6Addr::LOCALHOST, port).into()) || connect((Ipv4Addr::LOCALHOST, port).into())
        }
        // The bound address itself, which keeps an IPv6 scope id.
        _ => connect(addr),
    }
}

/// Waits for the port to be free, then serves it.
fn standby_loop(target: SocketAddr, shared: Arc<Shared>) {
    loop {
        let deadline = Instant::now() + STANDBY_RETRY;
        while Instant::now() < deadline {
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            thread::sleep(POLL);
        }
        if let Ok(listener) = TcpListener::bind(target) {
            register_listener(&listener);
            shared.bound.store(true, Ordering::SeqCst);
            return accept_loop(listener, shared);
        }
    }
}

/// Accepts connections until stopped, handing each to its own short-lived thread.
fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut workers: Vec<JoinHandle<()>> = Vec::with_capacity(MAX_CONNECTIONS);
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::ConnectionAborted) => continue,
            Err(_) => {
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        workers.retain(|w| !w.is_finished());
        if workers.len() >= MAX_CONNECTIONS {
            reject_busy(stream);
            continue;
        }
        let worker_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name("last9-metrics-conn".into())
            .spawn(move || serve(stream, &worker_shared));
        // If no thread can be spawned the closure, and with it the connection, is dropped.
        if let Ok(worker) = spawned {
            workers.push(worker);
        }
    }
    unregister_listener(&listener);
    drop(listener);
    for worker in workers {
        let _ = worker.join();
    }
}

/// Answers 503 without reading the request. It runs on the accept thread, so it must not wait:
/// a fresh socket's send buffer takes this small response at once, and the timeout caps the rest.
fn reject_busy(mut stream: TcpStream) {
    let reply = Reply::text(503, "too many concurrent scrapes\n");
    let _ = stream.set_write_timeout(Some(Duration::from_millis(50)));
    let _ = stream.write_all(render_head(&reply).as_bytes());
    let _ = stream.write_all(&reply.body);
    let _ = stream.shutdown(Shutdown::Write);
}

/// Serves one request on one connection, then closes it. Never panics unless the handler does,
/// and that is caught.
fn serve(mut stream: TcpStream, shared: &Shared) {
    // The response is written in two parts; don't let Nagle hold the second back.
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; MAX_HEAD];
    let reply = match read_head(&mut stream, &mut buf, shared) {
        Head::Complete(len) => respond(&buf[..len], &shared.handler),
        Head::TooLarge => Reply::text(400, "request head too large\n"),
        Head::Abandoned => return,
    };
    if write_reply(&mut stream, &reply, shared).is_ok() {
        linger(&mut stream, shared);
    }
}

enum Head {
    /// The head (through its blank line) is `buf[..len]`.
    Complete(usize),
    TooLarge,
    /// Closed, failed, timed out or the server is stopping: nothing to answer.
    Abandoned,
}

/// Reads until the blank line that ends the head, within one deadline for the whole head, so a
/// client dripping one byte at a time cannot hold the connection past the timeout.
fn read_head(stream: &mut TcpStream, buf: &mut [u8], shared: &Shared) -> Head {
    let deadline = Instant::now() + shared.timeout;
    let mut len = 0;
    loop {
        let Some(left) = time_left(deadline, &shared.stop) else {
            return Head::Abandoned;
        };
        if stream.set_read_timeout(Some(left.min(POLL))).is_err() {
            return Head::Abandoned;
        }
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Head::Abandoned,
            Ok(n) => {
                let scan_from = len;
                len += n;
                if let Some(end) = find_head_end(&buf[..len], scan_from) {
                    return Head::Complete(end);
                }
                if len == buf.len() {
                    return Head::TooLarge;
                }
            }
            Err(e) if is_transient(e.kind()) => {}
            Err(_) => return Head::Abandoned,
        }
    }
}

/// Finds the end of the blank line that closes the head, checking only newlines at or after
/// `from` (the earlier bytes were scanned by a previous call). Bare `\n` line ends are accepted.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len())
        .find(|&i| buf[i] == b'\n' && (buf[..i].ends_with(b"\n") || buf[..i].ends_with(b"\n\r")))
        .map(|i| i + 1)
}

/// A syntactically valid request head.
#[derive(Debug)]
struct Parsed<'a> {
    method: &'a str,
    /// `None` when the target is neither origin-form (`/path`) nor absolute-form (`http://…`).
    path: Option<&'a str>,
    accept: Option<Cow<'a, str>>,
    accept_encoding: Option<Cow<'a, str>>,
}

/// Parses a request head strictly enough to reject smuggling-style ambiguity (space before the
/// colon, obsolete line folding, control characters); `None` means 400.
fn parse_head(head: &[u8]) -> Option<Parsed<'_>> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line));
    // RFC 9112 §2.2: empty lines before the request line are to be ignored.
    let request_line = lines.by_ref().find(|line| !line.is_empty())?;
    let mut parts = request_line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let target_ok = !target.is_empty() && target.bytes().all(|b| b.is_ascii_graphic());
    if parts.next().is_some() || !is_token(method) || !target_ok || !is_http1(version) {
        return None;
    }

    let mut parsed = Parsed {
        method,
        path: path_of(target),
        accept: None,
        accept_encoding: None,
    };
    for line in lines.take_while(|line| !line.is_empty()) {
        // A name that is not a token also catches "Name : v" and folded lines starting with SP.
        let (name, value) = line.split_once(':')?;
        let value = value.trim_matches([' ', '\t']);
        if !is_token(name) || !value.bytes().all(is_field_byte) {
            return None;
        }
        if name.eq_ignore_ascii_case("accept") {
            merge(&mut parsed.accept, value);
        } else if name.eq_ignore_ascii_case("accept-encoding") {
            merge(&mut parsed.accept_encoding, value);
        }
    }
    Some(parsed)
}

/// Repeated headers mean the same as one comma-joined header (RFC 9110 §5.3).
fn merge<'a>(slot: &mut Option<Cow<'a, str>>, value: &'a str) {
    match slot {
        None => *slot = Some(Cow::Borrowed(value)),
        Some(_) if value.is_empty() => {}
        Some(joined) => {
            let joined = joined.to_mut();
            joined.push_str(", ");
            joined.push_str(value);
        }
    }
}

/// The path of an origin-form or absolute-form target, without query or fragment.
fn path_of(target: &str) -> Option<&str> {
    let path = if target.starts_with('/') {
        target
    } else {
        // Absolute-form, as sent through some proxies: drop "http://host:port".
        let (scheme, rest) = target.split_once("://")?;
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return None;
        }
        match rest.find(['/', '?', '#']) {
            Some(i) if rest[i..].starts_with('/') => &rest[i..],
            _ => "/",
        }
    };
    let end = path.find(['?', '#']).unwrap_or(path.len());
    Some(&path[..end])
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_field_byte(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

fn is_http1(version: &str) -> bool {
    version.len() == 8 && version.starts_with("HTTP/1.") && version.as_bytes()[7].is_ascii_digit()
}

/// A response ready to be written.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: &'static str,
    content_encoding: Option<&'static str>,
    allow: bool,
    body: Vec<u8>,
    /// HEAD, 204 and 304: headers describe `body`, but it is not sent.
    head_only: bool,
}

impl Reply {
    fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: TEXT_PLAIN,
            content_encoding: None,
            allow: false,
            body: body.as_bytes().to_vec(),
            head_only: false,
        }
    }

    fn from_handler(response: ScrapeResponse, head_only: bool) -> Reply {
        let header_ok = |v: &str| v.bytes().all(is_field_byte);
        // Only a well-formed final status and header values without CR/LF reach the wire.
        let valid = (200..=999).contains(&response.status)
            && header_ok(response.content_type)
            && response.content_encoding.is_none_or(header_ok);
        if !valid {
            return Reply::text(500, "invalid response from metrics handler\n");
        }
        Reply {
            status: response.status,
            content_type: response.content_type,
            content_encoding: response.content_encoding,
            allow: false,
            body: response.body,
            head_only: head_only || response.status == 204 || response.status == 304,
        }
    }
}

/// Decides the reply for a complete request head, calling the handler for GET and HEAD.
fn respond(head: &[u8], handler: &Handler) -> Reply {
    let Some(parsed) = parse_head(head) else {
        return Reply::text(400, "malformed request\n");
    };
    let head_only = match parsed.method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            let mut reply = Reply::text(405, "only GET and HEAD are supported\n");
            reply.allow = true;
            return reply;
        }
    };
    let Some(path) = parsed.path else {
        return Reply::text(400, "unsupported request target\n");
    };
    let request = ScrapeRequest {
        method: parsed.method,
        path,
        accept: parsed.accept.as_deref(),
        accept_encoding: parsed.accept_encoding.as_deref(),
    };
    // A bug in rendering must cost one scrape, not the app's process or this server.
    match panic::catch_unwind(AssertUnwindSafe(|| handler(&request))) {
        Ok(response) => Reply::from_handler(response, head_only),
        Err(_) => Reply::text(500, "metrics handler panicked\n"),
    }
}

fn render_head(reply: &Reply) -> String {
    let mut head = String::with_capacity(160);
    // Writing to a String cannot fail.
    let _ = write!(
        head,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\n",
        reply.status,
        reason(reply.status),
        reply.content_type
    );
    // RFC 9110 §8.6: a 204 must not carry Content-Length.
    if reply.status != 204 {
        let _ = write!(head, "Content-Length: {}\r\n", reply.body.len());
    }
    if let Some(encoding) = reply.content_encoding {
        let _ = write!(head, "Content-Encoding: {encoding}\r\n");
    }
    if reply.allow {
        head.push_str("Allow: GET, HEAD\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    head
}

fn write_reply(stream: &mut TcpStream, reply: &Reply, shared: &Shared) -> io::Result<()> {
    let total_deadline = Instant::now() + shared.timeout * WRITE_TOTAL_FACTOR;
    send_all(stream, render_head(reply).as_bytes(), shared, total_deadline)?;
    if !reply.head_only {
        send_all(stream, &reply.body, shared, total_deadline)?;
    }
    Ok(())
}

/// Writes all of `data`, giving up when the client makes no progress for the timeout, when
/// `total_deadline` passes (a slow reader cannot hold a slot for ever) or when stopping.
/// Std sends with `MSG_NOSIGNAL` (`SO_NOSIGPIPE` on macOS), so a vanished client is an error, not SIGPIPE.
fn send_all(
    stream: &mut TcpStream,
    mut data: &[u8],
    shared: &Shared,
    total_deadline: Instant,
) -> io::Result<()> {
    let mut idle_deadline = Instant::now() + shared.timeout;
    while !data.is_empty() {
        let left = time_left(idle_deadline.min(total_deadline), &shared.stop).ok_or(ErrorKind::TimedOut)?;
        stream.set_write_timeout(Some(left.min(POLL)))?;
        match stream.write(data) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => {
                data = &data[n..];
                idle_deadline = Instant::now() + shared.timeout;
            }
            Err(e) if is_transient(e.kind()) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Closes politely. Closing a socket with unread input (a POST body, the rest of an oversized
/// head) makes the kernel send RST, which can destroy the response before the client reads it;
/// so shut down our side first and drain, briefly and boundedly, until the client closes too.
fn linger(stream: &mut TcpStream, shared: &Shared) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER.min(shared.timeout);
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < LINGER_MAX_BYTES {
        let Some(left) = time_left(deadline, &shared.stop) else {
            return;
        };
        if stream.set_read_timeout(Some(left.min(POLL))).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(n) => drained += n,
            Err(e) if is_transient(e.kind()) => {}
            Err(_) => return,
        }
    }
}

/// Time until `deadline`, or `None` when it has passed or the server is stopping.
fn time_left(deadline: Instant, stop: &AtomicBool) -> Option<Duration> {
    if stop.load(Ordering::SeqCst) {
        return None;
    }
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
}

/// Errors after which a read or write may simply be retried (socket timeouts surface as
/// `WouldBlock` on Unix and `TimedOut` on Windows).
fn is_transient(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        // The reason phrase may be empty (RFC 9112 §4); the space before it may not.
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn start(handler: Handler) -> MetricsServer {
        MetricsServer::start_with_timeout("127.0.0.1", 0, handler, SHORT).unwrap()
    }

    fn connect(server: &MetricsServer) -> TcpStream {
        let stream = TcpStream::connect(server.local_addr()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream
    }

    /// Sends `raw` and returns the response head (without the blank line) and body.
    fn exchange(server: &MetricsServer, raw: &[u8]) -> (String, Vec<u8>) {
        let mut stream = connect(server);
        stream.write_all(raw).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let end = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete response head");
        let head = String::from_utf8(response[..end].to_vec()).unwrap();
        (head, response[end + 4..].to_vec())
    }

    fn get(server: &MetricsServer, path: &str) -> (String, Vec<u8>) {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        exchange(server, raw.as_bytes())
    }

    #[test]
    fn get_returns_handler_body_with_exact_headers() {
        let server = start(echo_handler());
        let (head, body) = get(&server, "/metrics");
        let expected_body = "GET /metrics None None\n";
        assert_eq!(
            head,
            format!(
                "HTTP/1.1 200 OK\r\n\
                 Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
                 Content-Length: {}\r\n\
                 Connection: close",
                expected_body.len()
            )
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
        let (head, body) = get(&server, "/metrics");
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\
             Content-Encoding: gzip\r\nConnection: close"
        );
        assert_eq!(body, [0x1f, 0x8b, 0, 1]);
    }

    #[test]
    fn head_sends_get_headers_without_body() {
        let server = start(echo_handler());
        let (head, body) = exchange(&server, b"HEAD /metrics HTTP/1.1\r\n\r\n");
        let would_be = "HEAD /metrics None None\n".len();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.contains(&format!("\r\nContent-Length: {would_be}\r\n")),
            "{head}"
        );
        assert!(body.is_empty());
    }

    #[test]
    fn handler_status_passes_through() {
        let server = start(echo_handler());
        let (head, body) = get(&server, "/other");
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
        assert_eq!(body, b"GET /other None None\n");
    }

    #[test]
    fn other_methods_get_405_with_allow() {
        let server = start(echo_handler());
        let (head, body) = exchange(
            &server,
            b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        );
        assert_eq!(
            head,
            format!(
                "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: {TEXT_PLAIN}\r\n\
                 Content-Length: {}\r\nAllow: GET, HEAD\r\nConnection: close",
                body.len()
            )
        );
        // Methods are case-sensitive.
        let (head, _) = exchange(&server, b"get /metrics HTTP/1.1\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 405 "), "{head}");
    }

    #[test]
    fn query_string_is_not_part_of_the_path() {
        let server = start(echo_handler());
        let (head, body) = get(&server, "/metrics?name[]=up&x=1");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(body, b"GET /metrics None None\n");
    }

    #[test]
    fn absolute_form_target_is_reduced_to_its_path() {
        let server = start(echo_handler());
        let (_, body) = get(&server, "http://host:9464/metrics?x=1");
        assert_eq!(body, b"GET /metrics None None\n");
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let server = start(echo_handler());
        let (_, body) = exchange(
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
    fn oversized_head_gets_400() {
        let server = start(echo_handler());
        let mut raw = b"GET /metrics HTTP/1.1\r\n".to_vec();
        raw.extend_from_slice(format!("X-Big: {}\r\n\r\n", "a".repeat(MAX_HEAD)).as_bytes());
        let (head, _) = exchange(&server, &raw);
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
    }

    #[test]
    fn head_just_under_the_limit_is_accepted() {
        let server = start(echo_handler());
        let prefix = "GET /metrics HTTP/1.1\r\nX-Pad: ";
        let pad = "a".repeat(MAX_HEAD - prefix.len() - 4);
        let raw = format!("{prefix}{pad}\r\n\r\n");
        assert_eq!(raw.len(), MAX_HEAD);
        let (head, _) = exchange(&server, raw.as_bytes());
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    }

    #[test]
    fn malformed_requests_get_400() {
        let server = start(echo_handler());
        let cases: &[&[u8]] = &[
            b"GET /metrics\r\n\r\n",
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/2.0\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nNo-Colon\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nAccept : */*\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nAccept: a\r\n folded\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nAccept: a\0b\r\n\r\n",
            b"GET /m\xffetrics HTTP/1.1\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        ];
        for raw in cases {
            let (head, _) = exchange(&server, raw);
            assert!(
                head.starts_with("HTTP/1.1 400 Bad Request\r\n"),
                "{:?} -> {head}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn silent_client_does_not_block_another_client() {
        let server = start(echo_handler());
        let _silent = connect(&server);
        let started = Instant::now();
        let (head, _) = get(&server, "/metrics");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(started.elapsed() < SHORT + Duration::from_secs(1));
    }

    #[test]
    fn silent_client_is_disconnected_after_the_timeout() {
        let server = start(echo_handler());
        let mut silent = connect(&server);
        let started = Instant::now();
        let mut buf = [0u8; 64];
        assert_eq!(silent.read(&mut buf).unwrap(), 0);
        let waited = started.elapsed();
        assert!(waited >= SHORT - Duration::from_millis(50), "{waited:?}");
        assert!(waited < SHORT + Duration::from_secs(1), "{waited:?}");
    }

    #[test]
    fn dripping_client_is_cut_off_at_the_deadline() {
        let server = start(echo_handler());
        let mut client = connect(&server);
        let started = Instant::now();
        // One byte every 50 ms never finishes the head; the deadline is for the whole head.
        for &b in b"GET /metrics HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
            if client.write_all(&[b]).is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest);
        assert!(rest.is_empty());
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn excess_connections_get_503_until_a_slot_frees() {
        let server =
            MetricsServer::start_with_timeout("127.0.0.1", 0, echo_handler(), Duration::from_secs(5))
                .unwrap();
        let silent: Vec<TcpStream> = (0..MAX_CONNECTIONS).map(|_| connect(&server)).collect();
        thread::sleep(Duration::from_millis(200));
        let (head, _) = get(&server, "/metrics");
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{head}");

        drop(silent);
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let (head, _) = get(&server, "/metrics");
            if head.starts_with("HTTP/1.1 200 OK\r\n") {
                break;
            }
            assert!(Instant::now() < deadline, "still busy: {head}");
            thread::sleep(Duration::from_millis(20));
        }
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
        let (head, _) = get(&server, "/boom");
        assert!(
            head.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
            "{head}"
        );
        let (head, body) = get(&server, "/metrics");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
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
            let (head, _) = get(&server, path);
            assert!(head.starts_with("HTTP/1.1 500 "), "{head}");
            assert!(!head.contains("X-Injected"), "{head}");
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
        let (head, body) = get(&server, "/metrics");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(body.len(), 32 * 1024 * 1024);
    }

    #[test]
    fn stop_returns_promptly_even_with_a_client_connected() {
        // The default (long) timeout: stop must not wait for it.
        let mut server = MetricsServer::start("127.0.0.1", 0, echo_handler()).unwrap();
        let _silent = connect(&server);
        thread::sleep(Duration::from_millis(50));
        let started = Instant::now();
        server.stop();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(TcpStream::connect(server.local_addr()).is_err());
        server.stop();
    }

    #[test]
    fn stop_on_a_wildcard_address_returns_promptly() {
        let mut server = MetricsServer::start("0.0.0.0", 0, echo_handler()).unwrap();
        let started = Instant::now();
        server.stop();
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn port_zero_binds_a_real_port() {
        let server = MetricsServer::start("localhost", 0, echo_handler()).unwrap();
        assert_ne!(server.local_addr().port(), 0);
        let (head, _) = get(&server, "/metrics");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    }

    #[test]
    fn ipv6_addresses_are_accepted_when_available() {
        // Some sandboxes have no IPv6; binding then fails with an error, which is also fine.
        for addr in ["::", "[::1]"] {
            if let Ok(mut server) = MetricsServer::start(addr, 0, echo_handler()) {
                let (head, _) = get(&server, "/metrics");
                assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
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
    fn head_end_is_found_with_crlf_or_bare_lf() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nbody", 0), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\nbody", 0), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n", 0), None);
        assert_eq!(find_head_end(b"\r\n", 0), None);
        // A terminator split across reads is found when scanning only the new bytes.
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\n", 17), Some(18));
    }

    #[test]
    fn parser_ignores_leading_empty_lines_and_other_headers() {
        let parsed = parse_head(b"\r\nGET /m?q HTTP/1.0\r\nHost: a\r\nAccept:\t*/* \r\n\r\n").unwrap();
        assert_eq!(parsed.method, "GET");
        assert_eq!(parsed.path, Some("/m"));
        assert_eq!(parsed.accept.as_deref(), Some("*/*"));
        assert_eq!(parsed.accept_encoding, None);
    }

    #[test]
    fn non_path_targets_have_no_path() {
        assert_eq!(path_of("*"), None);
        assert_eq!(path_of("example.com:443"), None);
        assert_eq!(path_of("ftp://host/metrics"), None);
        assert_eq!(path_of("HTTP://host"), Some("/"));
        assert_eq!(path_of("http://host?x=/y"), Some("/"));
        assert_eq!(path_of("/a#frag"), Some("/a"));
    }
}
