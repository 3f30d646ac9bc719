//! A scriptable fake AI upstream: HTTP/1.1 on a loopback port, one request
//! per connection, SSE bodies in chunked transfer encoding as the real APIs
//! send them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use specgen_ports::TokenUsage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::wire::Render;
use super::{FAKE_USAGE, FakeWire};

/// What the fake does with every request it receives.
#[derive(Debug, Clone)]
pub enum FakeBehaviour {
    /// Streams `chunks` as text deltas, `chunk_delay` before each, then the
    /// final usage and the stop event.
    Success { chunks: Vec<String>, chunk_delay: Duration },
    /// Answers `status` with `body` (JSON) and an optional `retry-after`
    /// header in seconds; no stream.
    Status { status: u16, retry_after: Option<u64>, body: String },
    /// Sends nothing at all for `delay` (no head, no byte), then the stream,
    /// with `chunk_delay` before each delta after the first (zero: all at
    /// once): an upstream with a fixed time to first byte, for measuring
    /// what the gateway adds on top of it. The first delta's text starts
    /// with [`UPSTREAM_OWN_TIME_PREFIX`] and the fake's own time, in
    /// microseconds, from having read the request to writing that delta.
    FirstByteAfter { delay: Duration, chunks: Vec<String>, chunk_delay: Duration },
    /// Sends the response head and the stream's preamble at once, then waits
    /// `delay` before the first delta.
    SlowFirstToken { delay: Duration, chunks: Vec<String> },
    /// Streams the first `after_chunks` deltas, then closes the socket
    /// abruptly: no stop event, no end of the chunked body.
    CutMidStream { chunks: Vec<String>, after_chunks: usize },
    /// Streams the first `after_chunks` deltas, then ends the HTTP body
    /// cleanly but without the stop event (`message_stop` / `[DONE]`), as a
    /// proxy that gives up on a stream may.
    EndsWithoutStop { chunks: Vec<String>, after_chunks: usize },
    /// One valid delta, then a `data: {not json` event, then more valid
    /// events and a normal end (an adapter must not skip the bad event).
    MalformedEvent { first_chunk: String },
    /// Streams the first `after_chunks` deltas, then the provider's in-stream
    /// error event with `kind` and `message`.
    ErrorEvent { chunks: Vec<String>, after_chunks: usize, kind: String, message: String },
}

/// Starts the first delta of [`FakeBehaviour::FirstByteAfter`], followed by
/// the fake's own time to that delta in whole microseconds and a space. The
/// benchmark subtracts it, so the fake's timer slack and its preamble writes
/// are not counted as what the server adds.
pub const UPSTREAM_OWN_TIME_PREFIX: &str = "upstream-us:";

/// The fake's own time to first token, read back from the start of a reply's
/// first chunk (see [`UPSTREAM_OWN_TIME_PREFIX`]).
pub fn upstream_own_time(first_chunk: &str) -> Option<Duration> {
    let rest = first_chunk.strip_prefix(UPSTREAM_OWN_TIME_PREFIX)?;
    let micros = rest.split(' ').next()?.parse().ok()?;
    Some(Duration::from_micros(micros))
}

/// Written after the fake's own time: when it read the request, in
/// microseconds of the wall clock, so that a client on the same machine can
/// split its wait into the part before the upstream and the part after.
pub const UPSTREAM_RECEIVED_AT_PREFIX: &str = "received-unix-us:";

/// When the fake read the request, read back from a reply's first chunk
/// (see [`UPSTREAM_RECEIVED_AT_PREFIX`]).
pub fn upstream_received_at(first_chunk: &str) -> Option<std::time::SystemTime> {
    let micros =
        first_chunk.split(' ').find_map(|word| word.strip_prefix(UPSTREAM_RECEIVED_AT_PREFIX))?.parse().ok()?;
    Some(std::time::UNIX_EPOCH + Duration::from_micros(micros))
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Header names in lower case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The JSON body, `Value::Null` when the body was not JSON.
    pub body: Value,
}

impl RecordedRequest {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

struct Shared {
    wire: FakeWire,
    behaviour: FakeBehaviour,
    usage: TokenUsage,
    requests: Mutex<Vec<RecordedRequest>>,
    /// How many connections the client closed while the fake was still
    /// streaming to it.
    peer_closes: watch::Sender<usize>,
}

pub struct FakeUpstream {
    address: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeUpstream {
    /// Listens on a free loopback port; usage is [`FAKE_USAGE`].
    pub async fn start(wire: FakeWire, behaviour: FakeBehaviour) -> Self {
        Self::start_with_usage(wire, behaviour, FAKE_USAGE).await
    }

    pub async fn start_with_usage(wire: FakeWire, behaviour: FakeBehaviour, usage: TokenUsage) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port for the fake upstream");
        let address = listener.local_addr().expect("local address");
        let (peer_closes, _) = watch::channel(0);
        let shared = Arc::new(Shared { wire, behaviour, usage, requests: Mutex::new(Vec::new()), peer_closes });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Self { address, shared, task }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The base URL to configure the adapter with (see [`FakeWire::base_url`]).
    pub fn base_url(&self) -> String {
        self.shared.wire.base_url(self.address)
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Connections the client closed before the fake finished its response.
    pub fn peer_closes(&self) -> usize {
        *self.shared.peer_closes.borrow()
    }

    /// Waits until the client has closed a connection mid-response; false if
    /// that did not happen `within`.
    pub async fn wait_for_peer_close(&self, within: Duration) -> bool {
        let mut closes = self.shared.peer_closes.subscribe();
        tokio::time::timeout(within, closes.wait_for(|n| *n > 0)).await.is_ok_and(|changed| changed.is_ok())
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        // The accept loop owns the connection tasks; aborting it drops them.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(stream, Arc::clone(&shared)));
                }
                Err(_) => return,
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    // Each event must leave as it is written, like a real streaming upstream.
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    // The benchmark's upstream keeps connections open between replies, as
    // the real APIs do; the other behaviours answer one request each.
    let keep_alive = matches!(shared.behaviour, FakeBehaviour::FirstByteAfter { .. });
    loop {
        let served = serve_one(&mut reader, &mut writer, &shared, keep_alive).await;
        if !(keep_alive && served) {
            return;
        }
    }
}

/// One request and its response; true when the connection may take another.
async fn serve_one(
    reader: &mut OwnedReadHalf,
    writer: &mut OwnedWriteHalf,
    shared: &Arc<Shared>,
    keep_alive: bool,
) -> bool {
    let Some(request) = read_request(reader).await else {
        return false;
    };
    let received = std::time::Instant::now();
    let routed = request.method == "POST" && request.path == shared.wire.completion_path();
    let model = request.body["model"].as_str().unwrap_or("unknown-model").to_owned();
    shared.requests.lock().unwrap().push(request);

    if !routed {
        let body = shared.wire.error_body("not_found_error", "no such route");
        let _ = write_plain(writer, 404, None, &body).await;
        return false;
    }
    if let FakeBehaviour::Status { status, retry_after, body } = &shared.behaviour {
        let _ = write_plain(writer, *status, *retry_after, body).await;
        return false;
    }

    let render = Render { wire: shared.wire, model: &model, usage: shared.usage };
    let steps = script(&shared.behaviour, &render);
    if let FakeBehaviour::FirstByteAfter { delay, .. } = &shared.behaviour {
        precise_sleep(*delay).await;
    }
    // Watch the read side while streaming: EOF there (or a failed write) is
    // the client going away, which tests of early drops wait for.
    let peer_gone = tokio::select! {
        written = stream_steps(writer, steps, keep_alive, &render, received) => written.is_err(),
        () = wait_for_eof(reader) => true,
    };
    if peer_gone {
        shared.peer_closes.send_modify(|n| *n += 1);
    }
    !peer_gone
}

/// Sleeps `delay` to within a fraction of a millisecond: the benchmark
/// subtracts it from what it measures, and tokio's timer rounds up to the
/// next millisecond. The last stretch is slept on a blocking thread.
async fn precise_sleep(delay: Duration) {
    let until = std::time::Instant::now() + delay;
    tokio::time::sleep(delay.saturating_sub(Duration::from_millis(2))).await;
    let rest = until.saturating_duration_since(std::time::Instant::now());
    let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
}

enum Step {
    Send(String),
    /// A delta whose text is prefixed, when it is sent, with the fake's own
    /// time since it read the request (see [`UPSTREAM_OWN_TIME_PREFIX`]).
    SendStamped(String),
    Sleep(Duration),
    /// Close the socket mid-body.
    Cut,
    /// End the chunked body properly and close.
    End,
}

fn script(behaviour: &FakeBehaviour, render: &Render<'_>) -> Vec<Step> {
    let mut steps: Vec<Step> = render.preamble().into_iter().map(Step::Send).collect();
    let deltas = |chunks: &[String], delay: Duration| -> Vec<Step> {
        chunks
            .iter()
            .flat_map(|c| {
                let pause = (!delay.is_zero()).then_some(Step::Sleep(delay));
                pause.into_iter().chain([Step::Send(render.delta(c))])
            })
            .collect()
    };
    let finish = || render.finish().into_iter().map(Step::Send);
    match behaviour {
        FakeBehaviour::Success { chunks, chunk_delay } => {
            steps.extend(deltas(chunks, *chunk_delay));
            steps.extend(finish());
            steps.push(Step::End);
        }
        FakeBehaviour::FirstByteAfter { chunks, chunk_delay, .. } => {
            if let Some((first, rest)) = chunks.split_first() {
                steps.push(Step::SendStamped(first.clone()));
                steps.extend(deltas(rest, *chunk_delay));
            }
            steps.extend(finish());
            steps.push(Step::End);
        }
        FakeBehaviour::SlowFirstToken { delay, chunks } => {
            steps.push(Step::Sleep(*delay));
            steps.extend(deltas(chunks, Duration::ZERO));
            steps.extend(finish());
            steps.push(Step::End);
        }
        FakeBehaviour::CutMidStream { chunks, after_chunks } => {
            steps.extend(deltas(&chunks[..*after_chunks], Duration::ZERO));
            steps.push(Step::Cut);
        }
        FakeBehaviour::EndsWithoutStop { chunks, after_chunks } => {
            steps.extend(deltas(&chunks[..*after_chunks], Duration::ZERO));
            steps.push(Step::End);
        }
        FakeBehaviour::MalformedEvent { first_chunk } => {
            steps.push(Step::Send(render.delta(first_chunk)));
            steps.push(Step::Send(render.malformed()));
            steps.push(Step::Send(render.delta(" and more")));
            steps.extend(finish());
            steps.push(Step::End);
        }
        FakeBehaviour::ErrorEvent { chunks, after_chunks, kind, message } => {
            steps.extend(deltas(&chunks[..*after_chunks], Duration::ZERO));
            steps.push(Step::Send(render.error_event(kind, message)));
            steps.push(Step::End);
        }
        // Answered before any stream starts (see `serve`).
        FakeBehaviour::Status { .. } => {}
    }
    steps
}

async fn stream_steps(
    writer: &mut OwnedWriteHalf,
    steps: Vec<Step>,
    keep_alive: bool,
    render: &Render<'_>,
    received: std::time::Instant,
) -> std::io::Result<()> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
         transfer-encoding: chunked\r\nconnection: {connection}\r\n\r\n"
    );
    writer.write_all(head.as_bytes()).await?;
    writer.flush().await?;
    for step in steps {
        match step {
            Step::Send(event) => send_event(writer, &event).await?,
            Step::SendStamped(text) => {
                let own = received.elapsed();
                let received_at = std::time::SystemTime::now()
                    .checked_sub(own)
                    .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |since_epoch| since_epoch.as_micros());
                let stamp =
                    format!("{UPSTREAM_OWN_TIME_PREFIX}{} {UPSTREAM_RECEIVED_AT_PREFIX}{received_at}", own.as_micros());
                send_event(writer, &render.delta(&format!("{stamp} {text}"))).await?;
            }
            Step::Sleep(pause) => tokio::time::sleep(pause).await,
            Step::Cut => return Ok(()),
            Step::End => {
                writer.write_all(b"0\r\n\r\n").await?;
                writer.flush().await?;
                if !keep_alive {
                    writer.shutdown().await?;
                }
                return Ok(());
            }
        }
    }
    Ok(())
}

/// One SSE event per HTTP chunk, flushed, so the client sees it now rather
/// than when a buffer fills.
async fn send_event(writer: &mut OwnedWriteHalf, event: &str) -> std::io::Result<()> {
    let frame = format!("{:x}\r\n{event}\r\n", event.len());
    writer.write_all(frame.as_bytes()).await?;
    writer.flush().await
}

/// Resolves when the client closes its side (or the socket fails). The client
/// sends nothing after its request, so any read that returns is the end.
async fn wait_for_eof(reader: &mut OwnedReadHalf) {
    let mut sink = [0u8; 512];
    loop {
        match reader.read(&mut sink).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        529 => "Overloaded",
        _ => "Status",
    }
}

async fn write_plain(
    writer: &mut OwnedWriteHalf,
    status: u16,
    retry_after: Option<u64>,
    body: &str,
) -> std::io::Result<()> {
    let retry = retry_after.map(|s| format!("retry-after: {s}\r\n")).unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{retry}connection: close\r\n\r\n",
        reason_phrase(status),
        body.len(),
    );
    writer.write_all(head.as_bytes()).await?;
    writer.write_all(body.as_bytes()).await?;
    writer.flush().await?;
    writer.shutdown().await
}

/// Reads one request: head up to the blank line, then `content-length` bytes.
async fn read_request(reader: &mut OwnedReadHalf) -> Option<RecordedRequest> {
    const LIMIT: usize = 1 << 20;
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buffer.len() > LIMIT {
            return None;
        }
        let read = reader.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(LIMIT);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let read = reader.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    Some(RecordedRequest { method, path, headers, body: serde_json::from_slice(&body).unwrap_or(Value::Null) })
}
