//! Pushing the metrics with the Prometheus remote-write 1.0 protocol.
//!
//! For apps a scraper cannot reach (batch jobs, serverless, NAT), a [`RemoteWriter`] sends the
//! metrics to any remote-write receiver: Prometheus with its receiver enabled, Last9, Mimir,
//! Thanos Receive, Cortex, VictoriaMetrics.
//!
//! One thread (`last9-remote-write`) does everything, so no request thread ever waits on it:
//! every `interval` it takes a [`Snapshot`], encodes it into compressed write requests
//! ([`proto`]) and appends them to a queue of at most `max_pending` snapshots; it sends the queue
//! in order, retrying with an exponential backoff on 5xx, 429 and network errors and dropping
//! requests the receiver rejects with another status ([`retry`]). When the queue is full the
//! oldest snapshot is dropped: the histograms are cumulative, so the newest snapshot still
//! carries every request counted so far and only resolution is lost. Dropped samples are counted
//! in [`Stats`] and logged.
//!
//! [`RemoteWriter::flush`] takes a snapshot now and waits for the queue to drain;
//! [`RemoteWriter::stop`] does a last flush within a deadline, then ends the thread.

mod endpoint;
mod log_text;
pub mod proto;
pub mod retry;

use std::collections::VecDeque;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};

use crate::error::Error;
use crate::model::registry::Registry;
use crate::snapshot::Snapshot;
use endpoint::Endpoint;
use proto::EncodedRequest;
use retry::{Backoff, Verdict};

/// Settings of a [`RemoteWriter`]; [`Config::new`] gives the defaults.
#[derive(Clone)]
pub struct Config {
    /// `http://` or `https://` URL of the receiver, e.g. `http://prometheus:9090/api/v1/write`.
    /// Credentials in the URL (`https://user:pass@host/...`) are used as basic auth.
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub bearer_token: Option<String>,
    /// Time between snapshots.
    pub interval: Duration,
    /// Snapshots waiting to be sent, at most; past it the oldest is dropped.
    pub max_pending: usize,
    /// Limit on each HTTP request, from connecting to reading the answer.
    pub timeout: Duration,
    /// PEM certificates to trust instead of the bundled Mozilla roots (for private CAs).
    pub ca_pem: Option<Vec<u8>>,
    pub max_samples_per_request: usize,
    pub user_agent: String,
    /// Push native histograms too. Off by default: Prometheus (2.42) answers a request holding
    /// one with an error, dropping its other series as well, unless its `native-histograms`
    /// feature is on.
    pub native_histograms: bool,
    /// Extra HTTP headers of every request (`X-Scope-OrgID` for Mimir and Cortex).
    pub headers: Vec<(String, String)>,
    /// Labels added to every series that lacks them (`job`, `instance`: what a scrape adds).
    pub external_labels: Vec<(String, String)>,
}

impl Config {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
    pub const DEFAULT_MAX_PENDING: usize = 20;
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    pub fn new(url: impl Into<String>) -> Config {
        Config {
            url: url.into(),
            username: None,
            password: None,
            bearer_token: None,
            interval: Config::DEFAULT_INTERVAL,
            max_pending: Config::DEFAULT_MAX_PENDING,
            timeout: Config::DEFAULT_TIMEOUT,
            ca_pem: None,
            max_samples_per_request: proto::DEFAULT_MAX_SAMPLES_PER_REQUEST,
            user_agent: concat!("last9/", env!("CARGO_PKG_VERSION")).to_string(),
            native_histograms: false,
            headers: Vec::new(),
            external_labels: Vec::new(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print credentials.
        f.debug_struct("Config")
            .field("url", &Endpoint::redact(&self.url))
            .field("interval", &self.interval)
            .field("max_pending", &self.max_pending)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// How bad a logged event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

/// Receives the writer's log messages (the Python binding hands them to `logging`).
pub type Logger = Arc<dyn Fn(Level, &str) + Send + Sync>;

/// Produces the snapshot of `http_requests_duration_milliseconds` to push; called on the writer's
/// thread. [`RemoteWriter::for_registry`] uses [`Snapshot::of`], the scrape's own snapshot.
pub type Source = Arc<dyn Fn() -> Snapshot + Send + Sync>;

/// Counters of a writer since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Samples the receiver accepted.
    pub sent_samples: u64,
    /// Samples given up on: rejected by the receiver, pushed out of a full queue, or still queued
    /// when `stop` ran out of time.
    pub dropped_samples: u64,
    /// Requests the receiver accepted.
    pub sent_requests: u64,
    /// Attempts that failed and were retried (5xx, 429, network errors).
    pub failed_attempts: u64,
    /// Snapshots taken.
    pub snapshots: u64,
    /// Snapshots waiting to be sent (the one being sent included).
    pub pending: usize,
}

#[derive(Default)]
struct Counters {
    /// The queue's length, kept here so that reading it needs no lock.
    pending: AtomicUsize,
    sent_samples: AtomicU64,
    dropped_samples: AtomicU64,
    sent_requests: AtomicU64,
    failed_attempts: AtomicU64,
    snapshots: AtomicU64,
}

/// A snapshot's compressed requests with their sample counts, sent in order.
struct Pending {
    id: u64,
    requests: Vec<(Arc<[u8]>, usize)>,
    next: usize,
}

impl Pending {
    fn new(id: u64, requests: Vec<EncodedRequest>) -> Pending {
        let requests = requests
            .into_iter()
            .map(|r| (Arc::from(r.body), r.samples))
            .collect();
        Pending {
            id,
            requests,
            next: 0,
        }
    }

    fn unsent_samples(&self) -> u64 {
        self.requests[self.next..].iter().map(|r| r.1 as u64).sum()
    }
}

struct State {
    queue: VecDeque<Pending>,
    next_id: u64,
    /// Snapshots asked for by `flush`, and how many of those asks have been answered.
    flush_asked: u64,
    flush_done: u64,
    /// No attempt before this instant (backoff).
    retry_at: Option<Instant>,
    backoff: Backoff,
    /// Consecutive failed attempts, for the recovery message.
    failures: u64,
    /// Set by `stop`: deliver what is queued until then, and exit.
    stop_deadline: Option<Instant>,
    /// Whether stopping takes a last snapshot (`stop`) or not (drop).
    final_snapshot: bool,
    last_timestamp_ms: i64,
    finished: bool,
    /// Whether the queue was empty when the thread finished.
    delivered_all: bool,
}

struct Shared {
    endpoint: Endpoint,
    interval: Duration,
    max_pending: usize,
    timeout: Duration,
    max_samples_per_request: usize,
    native_histograms: bool,
    headers: Vec<(String, String)>,
    external_labels: Vec<(String, String)>,
    agent: ureq::Agent,
    source: Source,
    state: Mutex<State>,
    /// Wakes the writer thread (a flush, a stop).
    wake: Condvar,
    /// Wakes callers of `flush` and `stop` when the queue changes or the thread ends.
    progress: Condvar,
    counters: Counters,
    logger: Mutex<Option<Logger>>,
}

/// A running remote-write sender; see the module documentation.
pub struct RemoteWriter {
    shared: Arc<Shared>,
    thread: Mutex<Option<thread::JoinHandle<()>>>,
    /// The process that started the thread. A forked child has a copy of this object but not
    /// the thread, and its locks may have been copied held: there it does nothing.
    pid: u32,
}

impl fmt::Debug for RemoteWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteWriter")
            .field("url", &self.shared.endpoint.url)
            .finish_non_exhaustive()
    }
}

impl RemoteWriter {
    /// Checks `config` and starts the thread that pushes the snapshots `source` makes.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRemoteWrite`] for a bad URL, conflicting or half-given credentials, a zero
    /// interval, timeout or queue bound, or CA certificates that do not parse.
    pub fn start(config: Config, source: Source, logger: Option<Logger>) -> Result<RemoteWriter, Error> {
        let endpoint = Endpoint::from_config(&config)?;
        let invalid = Error::InvalidRemoteWrite;
        if config.interval.is_zero() {
            return Err(invalid("interval must be greater than zero".into()));
        }
        if config.timeout.is_zero() {
            return Err(invalid("timeout must be greater than zero".into()));
        }
        if config.max_pending == 0 {
            return Err(invalid("max_pending must be at least 1".into()));
        }
        if config.max_samples_per_request == 0 {
            return Err(invalid("max_samples_per_request must be at least 1".into()));
        }
        check_headers(&config.headers)?;
        check_labels(&config.external_labels)?;
        let agent = build_agent(&config)?;
        let shared = Arc::new(Shared {
            endpoint,
            interval: config.interval,
            max_pending: config.max_pending,
            timeout: config.timeout,
            max_samples_per_request: config.max_samples_per_request,
            native_histograms: config.native_histograms,
            headers: config.headers,
            external_labels: config.external_labels,
            agent,
            source,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                next_id: 0,
                flush_asked: 0,
                flush_done: 0,
                retry_at: None,
                backoff: Backoff::default(),
                failures: 0,
                stop_deadline: None,
                final_snapshot: false,
                last_timestamp_ms: 0,
                finished: false,
                delivered_all: false,
            }),
            wake: Condvar::new(),
            progress: Condvar::new(),
            counters: Counters::default(),
            logger: Mutex::new(logger),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("last9-remote-write".into())
            .spawn(move || run(&thread_shared))
            .map_err(|e| invalid(format!("cannot start the remote-write thread: {e}")))?;
        Ok(RemoteWriter {
            shared,
            thread: Mutex::new(Some(thread)),
            pid: std::process::id(),
        })
    }

    /// Starts a writer that pushes every series of `registry`.
    ///
    /// # Errors
    ///
    /// As [`RemoteWriter::start`].
    pub fn for_registry(
        config: Config,
        registry: &'static Registry,
        logger: Option<Logger>,
    ) -> Result<RemoteWriter, Error> {
        RemoteWriter::start(config, Arc::new(move || Snapshot::of(registry)), logger)
    }

    /// The receiver's URL, without credentials.
    pub fn url(&self) -> &str {
        &self.shared.endpoint.url
    }

    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        Stats {
            sent_samples: c.sent_samples.load(Ordering::Relaxed),
            dropped_samples: c.dropped_samples.load(Ordering::Relaxed),
            sent_requests: c.sent_requests.load(Ordering::Relaxed),
            failed_attempts: c.failed_attempts.load(Ordering::Relaxed),
            snapshots: c.snapshots.load(Ordering::Relaxed),
            pending: c.pending.load(Ordering::Relaxed),
        }
    }

    /// Takes a snapshot now and waits until it and everything queued before it has been sent
    /// (or given up on), or `timeout` has passed. Returns whether the queue was emptied; with
    /// the receiver down it returns false after `timeout`, the snapshot staying queued.
    pub fn flush(&self, timeout: Duration) -> bool {
        if self.forked() {
            return false;
        }
        let deadline = Instant::now() + timeout;
        let shared = &self.shared;
        let mut state = shared.state.lock();
        if state.finished {
            return state.delivered_all;
        }
        state.flush_asked += 1;
        let asked = state.flush_asked;
        // Try at once rather than at the end of the current backoff pause.
        state.retry_at = None;
        shared.wake.notify_all();
        loop {
            if state.flush_done >= asked && state.queue.is_empty() {
                return true;
            }
            if state.finished {
                return state.delivered_all;
            }
            if shared.progress.wait_until(&mut state, deadline).timed_out() {
                return state.flush_done >= asked && state.queue.is_empty();
            }
        }
    }

    /// Takes a last snapshot, sends what is queued within `timeout`, and ends the thread; what is
    /// still queued then is counted as dropped. Returns whether everything was delivered. Later
    /// calls return the first one's answer.
    pub fn stop(&self, timeout: Duration) -> bool {
        self.shut_down(timeout, true)
    }

    /// Whether this is a forked child's copy of a writer started by its parent.
    fn forked(&self) -> bool {
        std::process::id() != self.pid
    }

    fn shut_down(&self, timeout: Duration, final_snapshot: bool) -> bool {
        if self.forked() {
            return false;
        }
        let shared = &self.shared;
        let deadline = Instant::now() + timeout;
        {
            let mut state = shared.state.lock();
            if state.stop_deadline.is_none() {
                state.stop_deadline = Some(deadline);
                state.final_snapshot = final_snapshot;
                state.retry_at = None;
            }
            shared.wake.notify_all();
            // The thread honours the deadline itself; the grace covers one request in flight.
            let give_up = state.stop_deadline.unwrap_or(deadline) + Duration::from_secs(1);
            while !state.finished {
                if shared.progress.wait_until(&mut state, give_up).timed_out() {
                    break;
                }
            }
        }
        let finished = shared.state.lock().finished;
        if finished {
            if let Some(thread) = self.thread.lock().take() {
                let _ = thread.join();
            }
        }
        // Whatever happens to the thread now, it must not call the logger any more (the
        // interpreter behind it may be shutting down). Waits for a message being logged.
        *shared.logger.lock() = None;
        let state = shared.state.lock();
        state.finished && state.delivered_all
    }
}

impl Drop for RemoteWriter {
    /// A writer dropped without [`RemoteWriter::stop`] ends without a last snapshot; what is
    /// queued is counted as dropped. Like `stop`, this waits for a message being logged, so a
    /// logger that needs a lock (Python's GIL) must not be held by the dropping thread.
    fn drop(&mut self) {
        self.shut_down(Duration::ZERO, false);
    }
}

fn build_agent(config: &Config) -> Result<ureq::Agent, Error> {
    let mut builder = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .timeout_global(Some(config.timeout))
        .user_agent(config.user_agent.as_str());
    if let Some(pem) = &config.ca_pem {
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(pem) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => certs.push(cert),
                Ok(_) => {}
                Err(e) => {
                    return Err(Error::InvalidRemoteWrite(format!(
                        "CA certificates do not parse: {e}"
                    )))
                }
            }
        }
        if certs.is_empty() {
            return Err(Error::InvalidRemoteWrite(
                "the CA file holds no PEM certificate".into(),
            ));
        }
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
            .build();
        builder = builder.tls_config(tls);
    }
    Ok(builder.build().into())
}

impl Shared {
    fn log(&self, level: Level, message: &str) {
        if let Some(logger) = self.logger.lock().as_ref() {
            logger(level, message);
        }
    }

    fn drop_samples(&self, samples: u64) {
        self.counters
            .dropped_samples
            .fetch_add(samples, Ordering::Relaxed);
    }
}

/// The writer thread.
fn run(shared: &Shared) {
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| work(shared)));
    let mut state = shared.state.lock();
    if outcome.is_err() {
        drop(state);
        shared.log(Level::Error, "remote write stopped after an internal error");
        state = shared.state.lock();
    }
    let abandoned: u64 = state.queue.drain(..).map(|p| p.unsent_samples()).sum();
    shared.counters.pending.store(0, Ordering::Relaxed);
    state.delivered_all = abandoned == 0 && outcome.is_ok();
    state.finished = true;
    shared.progress.notify_all();
    drop(state);
    if abandoned > 0 {
        shared.drop_samples(abandoned);
        shared.log(
            Level::Warning,
            &format!(
                "remote write to {} stopped with {abandoned} samples not delivered",
                shared.endpoint.url
            ),
        );
    }
}

/// What the thread does next.
enum Step {
    Collect {
        answers: u64,
    },
    Send {
        id: u64,
        body: Arc<[u8]>,
        samples: usize,
        timeout: Duration,
    },
    Exit,
}

fn work(shared: &Shared) {
    let mut next_collect = Instant::now() + shared.interval;
    let mut final_collected = false;
    loop {
        let step = {
            let mut state = shared.state.lock();
            loop {
                let now = Instant::now();
                if let Some(deadline) = state.stop_deadline {
                    if !final_collected && state.final_snapshot {
                        final_collected = true;
                        break Step::Collect {
                            answers: state.flush_asked,
                        };
                    }
                    if state.queue.is_empty() || now >= deadline {
                        break Step::Exit;
                    }
                } else if state.flush_asked > state.flush_done {
                    // One snapshot per call of `flush`, each answering one call.
                    break Step::Collect {
                        answers: state.flush_done + 1,
                    };
                } else if now >= next_collect {
                    // Skip intervals missed while a request was slow rather than bunching up.
                    while next_collect <= now {
                        next_collect += shared.interval;
                    }
                    break Step::Collect {
                        answers: state.flush_done,
                    };
                }
                let ready = state.retry_at.is_none_or(|at| now >= at);
                if ready {
                    if let Some(front) = state.queue.front() {
                        let (body, samples) = front.requests[front.next].clone();
                        let timeout = match state.stop_deadline {
                            Some(deadline) => shared.timeout.min(deadline.saturating_duration_since(now)),
                            None => shared.timeout,
                        };
                        break Step::Send {
                            id: front.id,
                            body,
                            samples,
                            timeout: timeout.max(Duration::from_millis(1)),
                        };
                    }
                }
                let mut wake_at = match state.stop_deadline {
                    Some(deadline) => deadline,
                    None => next_collect,
                };
                if !state.queue.is_empty() {
                    if let Some(at) = state.retry_at {
                        wake_at = wake_at.min(at);
                    }
                }
                shared.wake.wait_until(&mut state, wake_at);
            }
        };
        match step {
            Step::Exit => return,
            Step::Collect { answers } => collect(shared, answers),
            Step::Send {
                id,
                body,
                samples,
                timeout,
            } => {
                let attempt = send(shared, &body, timeout);
                settle(shared, id, samples, attempt);
            }
        }
    }
}

/// Headers the protocol or the credentials set, which extra headers may not replace.
const RESERVED_HEADERS: [&str; 7] = [
    "authorization",
    "content-encoding",
    "content-length",
    "content-type",
    "host",
    "user-agent",
    "x-prometheus-remote-write-version",
];

/// Extra headers must be HTTP tokens with visible values, and not one the protocol sets.
fn check_headers(headers: &[(String, String)]) -> Result<(), Error> {
    for (name, value) in headers {
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(token) {
            return Err(Error::InvalidRemoteWrite(format!(
                "header name {name:?} is not a valid HTTP header name"
            )));
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(Error::InvalidRemoteWrite(format!(
                "header {name} is set by last9 itself (use the credentials settings for Authorization)"
            )));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(Error::InvalidRemoteWrite(format!(
                "header {name} has a control character in its value"
            )));
        }
    }
    Ok(())
}

/// External labels need Prometheus label names, not reserved (`__...`) ones.
fn check_labels(labels: &[(String, String)]) -> Result<(), Error> {
    for (name, _) in labels {
        let mut chars = name.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with("__");
        if !valid {
            return Err(Error::InvalidRemoteWrite(format!(
                "label name {name:?} is not a valid Prometheus label name"
            )));
        }
    }
    Ok(())
}

/// Takes a snapshot, encodes it and queues it, dropping the oldest snapshot past the bound.
fn collect(shared: &Shared, answers: u64) {
    let snapshot = (shared.source)();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut state = shared.state.lock();
    // Each snapshot gets its own, increasing timestamp: a receiver rejects a second value for a
    // series at the same millisecond.
    let timestamp_ms = now_ms.max(state.last_timestamp_ms + 1);
    state.last_timestamp_ms = timestamp_ms;
    drop(state);
    let requests = proto::write_requests(
        &snapshot,
        &shared.external_labels,
        timestamp_ms,
        shared.max_samples_per_request,
        shared.native_histograms,
    );
    shared.counters.snapshots.fetch_add(1, Ordering::Relaxed);
    let mut pending = Pending::new(0, requests);
    let mut state = shared.state.lock();
    let mut overflow = 0u64;
    if !pending.requests.is_empty() {
        pending.id = state.next_id;
        state.next_id += 1;
        state.queue.push_back(pending);
        while state.queue.len() > shared.max_pending {
            if let Some(oldest) = state.queue.pop_front() {
                overflow += oldest.unsent_samples();
            }
        }
    }
    state.flush_done = state.flush_done.max(answers);
    let pending = state.queue.len();
    shared.counters.pending.store(pending, Ordering::Relaxed);
    drop(state);
    if overflow > 0 {
        shared.drop_samples(overflow);
        let total = shared.counters.dropped_samples.load(Ordering::Relaxed);
        shared.log(
            Level::Warning,
            &format!(
                "remote write queue to {} is full ({pending} snapshots pending, max_pending={}): \
                 dropped the oldest snapshot, {overflow} samples ({total} dropped in all)",
                shared.endpoint.url, shared.max_pending
            ),
        );
    }
    shared.progress.notify_all();
}

/// What one attempt to send a request came to.
#[derive(Debug)]
enum Attempt {
    Status {
        status: u16,
        retry_after: Option<Duration>,
        body: String,
    },
    Failed(String),
}

fn send(shared: &Shared, body: &[u8], timeout: Duration) -> Attempt {
    let mut request = shared
        .agent
        .post(&shared.endpoint.url)
        .header("Content-Encoding", proto::CONTENT_ENCODING)
        .header("Content-Type", proto::CONTENT_TYPE)
        .header(proto::VERSION_HEADER, proto::VERSION);
    if let Some(authorization) = &shared.endpoint.authorization {
        request = request.header("Authorization", authorization);
    }
    for (name, value) in &shared.headers {
        request = request.header(name, value);
    }
    let request = request.config().timeout_global(Some(timeout)).build();
    match request.send(body) {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry::retry_after(Some(v)));
            let mut text = String::new();
            if !(200..300).contains(&status) {
                let mut reader = std::io::Read::take(response.body_mut().as_reader(), 512);
                let mut raw = Vec::new();
                let _ = std::io::Read::read_to_end(&mut reader, &mut raw);
                text = log_text::loggable(&String::from_utf8_lossy(&raw), &shared.endpoint.secrets);
            }
            Attempt::Status {
                status,
                retry_after,
                body: text,
            }
        }
        Err(e) => Attempt::Failed(log_text::loggable(&e.to_string(), &shared.endpoint.secrets)),
    }
}

/// Applies the outcome of an attempt to the queue, then logs about it.
fn settle(shared: &Shared, id: u64, samples: usize, attempt: Attempt) {
    let verdict = match &attempt {
        Attempt::Status { status, .. } => retry::verdict(*status),
        Attempt::Failed(_) => Verdict::Retry,
    };
    let mut state = shared.state.lock();
    let mut message = None;
    match verdict {
        Verdict::Delivered | Verdict::Reject => {
            advance(&mut state, id);
            shared
                .counters
                .pending
                .store(state.queue.len(), Ordering::Relaxed);
            if verdict == Verdict::Delivered {
                shared.counters.sent_requests.fetch_add(1, Ordering::Relaxed);
                shared
                    .counters
                    .sent_samples
                    .fetch_add(samples as u64, Ordering::Relaxed);
            } else {
                shared.drop_samples(samples as u64);
            }
            if state.failures > 0 && verdict == Verdict::Delivered {
                message = Some((
                    Level::Info,
                    format!(
                        "remote write to {} recovered after {} failed attempts",
                        shared.endpoint.url, state.failures
                    ),
                ));
            }
            state.failures = 0;
            state.backoff.reset();
            state.retry_at = None;
            if let Attempt::Status { status, body, .. } = &attempt {
                if verdict == Verdict::Reject {
                    message = Some((
                        Level::Error,
                        format!(
                            "remote write to {} was rejected with HTTP {status}, not retrying: \
                             dropped {samples} samples: {body}",
                            shared.endpoint.url
                        ),
                    ));
                }
            }
        }
        Verdict::Retry => {
            shared.counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
            let retry_after = match &attempt {
                Attempt::Status { retry_after, .. } => *retry_after,
                Attempt::Failed(_) => None,
            };
            let delay = retry_after.unwrap_or_else(|| state.backoff.next_delay());
            state.retry_at = Some(Instant::now() + delay);
            state.failures += 1;
            if state.failures == 1 {
                let why = match &attempt {
                    Attempt::Status { status, body, .. } => format!("HTTP {status}: {body}"),
                    Attempt::Failed(error) => error.clone(),
                };
                message = Some((
                    Level::Warning,
                    format!(
                        "remote write to {} failed ({why}); retrying with backoff",
                        shared.endpoint.url
                    ),
                ));
            }
        }
    }
    drop(state);
    if let Some((level, text)) = message {
        shared.log(level, &text);
    }
    // After logging, so that whoever waits on the outcome also sees its message.
    shared.progress.notify_all();
}

/// Moves past the request just settled, if its snapshot is still at the front of the queue (it
/// may have been dropped from a full queue meanwhile).
fn advance(state: &mut State, id: u64) {
    if let Some(front) = state.queue.front_mut() {
        if front.id == id {
            front.next += 1;
            if front.next == front.requests.len() {
                state.queue.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::histogram::Buckets;
    use crate::model::registry::{ConstLabels, Limits, Request};
    use base64::Engine as _;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    fn endpoint(config: Config) -> Result<Endpoint, Error> {
        Endpoint::from_config(&config)
    }

    #[test]
    fn basic_auth_and_bearer_tokens_become_the_authorization_header() {
        let mut config = Config::new("https://example.com/api/v1/write");
        config.username = Some("user".into());
        config.password = Some("pa:ss".into());
        assert_eq!(
            endpoint(config.clone()).unwrap().authorization.as_deref(),
            Some("Basic dXNlcjpwYTpzcw==")
        );
        let mut bearer = Config::new("http://example.com/push");
        bearer.bearer_token = Some("t0ken".into());
        assert_eq!(
            endpoint(bearer).unwrap().authorization.as_deref(),
            Some("Bearer t0ken")
        );
        config.bearer_token = Some("t0ken".into());
        assert!(endpoint(config).is_err());
    }

    #[test]
    fn credentials_in_the_url_are_basic_auth_and_never_shown() {
        let e = endpoint(Config::new("https://us%40er:p%2Fss@example.com:8443/write?x=1")).unwrap();
        assert_eq!(e.url, "https://example.com:8443/write?x=1");
        assert_eq!(
            e.authorization.as_deref(),
            Some(
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("us@er:p/ss")
                )
                .as_str()
            )
        );
        assert_eq!(
            Endpoint::redact("https://user:secret@example.com/write"),
            "https://***@example.com/write"
        );
        let config = Config::new("https://user:secret@example.com/write");
        assert!(!format!("{config:?}").contains("secret"));
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        let cases = [
            ("example.com/write", "http:// or https://"),
            ("ftp://example.com/write", "http:// or https://"),
            ("http:///write", "no host"),
        ];
        for (url, why) in cases {
            let err = endpoint(Config::new(url)).unwrap_err().to_string();
            assert!(err.contains(why), "{url}: {err}");
        }
        let mut half = Config::new("http://example.com/");
        half.username = Some("user".into());
        assert!(endpoint(half)
            .unwrap_err()
            .to_string()
            .contains("password is not"));
        let source: Source = Arc::new(Snapshot::default);
        let mut zero = Config::new("http://127.0.0.1:9/");
        zero.interval = Duration::ZERO;
        assert!(RemoteWriter::start(zero, source.clone(), None).is_err());
        let mut bad_ca = Config::new("https://127.0.0.1:9/");
        bad_ca.ca_pem = Some(b"not a certificate".to_vec());
        let err = RemoteWriter::start(bad_ca, source, None).unwrap_err().to_string();
        assert!(err.contains("CA"), "{err}");
    }

    /// A registry with one series of one request, and the source that snapshots it.
    /// Samples one snapshot of [`one_request_source`] pushes: the histogram's bucket, `+Inf`,
    /// sum and count, and the overflow counter's two samples.
    const SAMPLES: u64 = 4 + 2;

    fn one_request_source() -> (Arc<Registry>, Source) {
        let registry = Arc::new(Registry::new());
        let recorder = registry
            .recorder(
                ConstLabels {
                    hostname: "box".into(),
                    program: "job".into(),
                    ..Default::default()
                },
                Buckets::new(&[1.0]).unwrap(),
                Limits::default(),
            )
            .unwrap();
        let route = recorder.route("/x");
        recorder.observe(&Request {
            route,
            host: Some("h"),
            method: "GET",
            status: 200,
            duration_ns: 1,
        });
        let for_source = Arc::clone(&registry);
        (registry, Arc::new(move || Snapshot::of(&for_source)))
    }

    /// Reads one HTTP request from `stream`: its head (lowercase header names) and body.
    fn read_request(stream: &mut std::net::TcpStream) -> (String, Vec<(String, String)>, Vec<u8>) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let request_line = line.trim_end().to_string();
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            let (name, value) = trimmed.split_once(':').unwrap();
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap();
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        (request_line, headers, body)
    }

    fn answer(stream: &mut std::net::TcpStream, status: &str) {
        let response = format!("HTTP/1.1 {status}\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope");
        stream.write_all(response.as_bytes()).unwrap();
    }

    #[test]
    fn a_request_carries_the_remote_write_headers_and_a_snappy_protobuf() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (registry, source) = one_request_source();
        let mut config = Config::new(format!("http://127.0.0.1:{port}/api/v1/write"));
        config.bearer_token = Some("secret-token".into());
        config.interval = Duration::from_secs(3600);
        let writer = RemoteWriter::start(config, source, None).unwrap();
        let (tx, rx) = mpsc::channel();
        let server = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let request = read_request(&mut stream);
            answer(&mut stream, "204 No Content");
            tx.send(request).unwrap();
        });
        assert!(writer.flush(Duration::from_secs(10)));
        let (request_line, headers, body) = rx.recv().unwrap();
        server.join().unwrap();
        assert_eq!(request_line, "POST /api/v1/write HTTP/1.1");
        let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(header("content-encoding"), Some("snappy"));
        assert_eq!(header("content-type"), Some("application/x-protobuf"));
        assert_eq!(header("x-prometheus-remote-write-version"), Some("0.1.0"));
        assert_eq!(header("authorization"), Some("Bearer secret-token"));
        assert!(header("user-agent").unwrap().starts_with("last9/"));
        let proto = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        // One series with buckets 1 and +Inf: 4 time series of one sample each.
        let mut series = 0;
        let mut rest = &proto[..];
        while let [0x0a, tail @ ..] = rest {
            let (mut len, mut shift, mut used) = (0usize, 0, 0);
            for byte in tail {
                len |= usize::from(byte & 0x7f) << shift;
                shift += 7;
                used += 1;
                if byte & 0x80 == 0 {
                    break;
                }
            }
            series += 1;
            rest = &tail[used + len..];
        }
        assert!(rest.is_empty());
        assert_eq!(series, SAMPLES);
        let contains = |needle: &[u8]| proto.windows(needle.len()).any(|w| w == needle);
        assert!(contains(b"http_requests_duration_milliseconds_count"));
        assert!(contains(b"/x"));
        let stats = writer.stats();
        assert_eq!(
            (stats.sent_requests, stats.sent_samples, stats.dropped_samples),
            (1, SAMPLES, 0)
        );
        drop(registry);
    }

    #[test]
    fn server_errors_are_retried_and_client_errors_are_dropped() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (_registry, source) = one_request_source();
        let mut config = Config::new(format!("http://127.0.0.1:{port}/write"));
        config.interval = Duration::from_secs(3600);
        let messages = Arc::new(Mutex::new(Vec::<(Level, String)>::new()));
        let log_sink = Arc::clone(&messages);
        let logger: Logger = Arc::new(move |level, text| log_sink.lock().push((level, text.to_string())));
        let writer = RemoteWriter::start(config, source, Some(logger)).unwrap();
        let server = thread::spawn(move || {
            // First snapshot: 503, then 429, then accepted. Second snapshot: 400, once. The last
            // one, taken by `stop`: accepted.
            let mut bodies = Vec::new();
            let statuses = [
                "503 Service Unavailable",
                "429 Too Many Requests",
                "200 OK",
                "400 Bad Request",
                "200 OK",
            ];
            for status in statuses {
                let (mut stream, _) = listener.accept().unwrap();
                bodies.push(read_request(&mut stream).2);
                answer(&mut stream, status);
            }
            bodies
        });
        assert!(writer.flush(Duration::from_secs(10)));
        let stats = writer.stats();
        assert_eq!(
            (stats.failed_attempts, stats.sent_samples, stats.dropped_samples),
            (2, SAMPLES, 0)
        );
        assert!(writer.flush(Duration::from_secs(10)));
        let stats = writer.stats();
        assert_eq!(
            (stats.failed_attempts, stats.sent_samples, stats.dropped_samples),
            (2, SAMPLES, SAMPLES)
        );
        assert!(writer.stop(Duration::from_secs(10)));
        let bodies = server.join().unwrap();
        // Retries resend the same request.
        assert_eq!(bodies[0], bodies[1]);
        assert_eq!(bodies[1], bodies[2]);
        assert_eq!(writer.stats().sent_samples, 2 * SAMPLES);
        let logged = messages.lock().clone();
        assert!(
            logged
                .iter()
                .any(|(l, m)| *l == Level::Warning && m.contains("HTTP 503")),
            "{logged:?}"
        );
        assert!(
            logged
                .iter()
                .any(|(l, m)| *l == Level::Info && m.contains("recovered after 2")),
            "{logged:?}"
        );
        assert!(
            logged
                .iter()
                .any(|(l, m)| *l == Level::Error && m.contains("HTTP 400")),
            "{logged:?}"
        );
    }

    #[test]
    fn a_full_queue_drops_the_oldest_snapshot_and_counts_it() {
        // Nothing listens on this port: every attempt fails to connect.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (_registry, source) = one_request_source();
        let mut config = Config::new(format!("http://127.0.0.1:{port}/write"));
        config.interval = Duration::from_secs(3600);
        config.max_pending = 2;
        let messages = Arc::new(Mutex::new(Vec::<String>::new()));
        let log_sink = Arc::clone(&messages);
        let logger: Logger = Arc::new(move |_, text| log_sink.lock().push(text.to_string()));
        let writer = RemoteWriter::start(config, source, Some(logger)).unwrap();
        for _ in 0..5 {
            assert!(!writer.flush(Duration::ZERO));
        }
        // flush(0) returns before the snapshot is taken: wait for all five, and for an attempt
        // to have failed.
        let deadline = Instant::now() + Duration::from_secs(10);
        let settled = |s: Stats| s.snapshots == 5 && s.failed_attempts > 0;
        while !settled(writer.stats()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        let stats = writer.stats();
        assert_eq!(
            (stats.snapshots, stats.pending, stats.dropped_samples),
            (5, 2, 3 * SAMPLES)
        );
        assert!(stats.failed_attempts >= 1);
        let logged = messages.lock().clone();
        assert!(
            logged
                .iter()
                .any(|m| m.contains("queue") && m.contains("dropped")),
            "{logged:?}"
        );
        // Stopping with the receiver still down gives up on the rest, counted too: the two
        // queued snapshots and the last one taken at stop.
        // The last snapshot pushes one more out of the queue, and the two left are abandoned: all
        // six snapshots are counted as dropped.
        assert!(!writer.stop(Duration::from_millis(200)));
        let stats = writer.stats();
        assert_eq!(
            (stats.snapshots, stats.pending, stats.dropped_samples),
            (6, 0, 6 * SAMPLES)
        );
    }
}
