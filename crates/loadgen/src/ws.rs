//! The gateway benchmark. Opens many authenticated WebSocket connections,
//! each joined to a session, and measures the server's resident memory per
//! idle connection and the connect rate; then, in one session of `members`
//! connections, sends a message every `interval` and measures the time
//! from send to receipt at every member, and how many receipts never came.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpSocket;

use crate::stats::Latencies;

const PASSWORD: &str = "Bench-Marmot-2024";

pub struct Plan {
    pub connections: usize,
    pub users: usize,
    pub sessions: usize,
    /// Connections opened at once.
    pub parallel: usize,
    /// Local addresses to connect from, in turn (more ephemeral ports).
    pub sources: Vec<IpAddr>,
    pub interval: Duration,
    pub fanout_seconds: u64,
    pub server_pid: u32,
    /// Idle time before measuring memory.
    pub settle: Duration,
}

pub async fn run(base: &str, plan: Plan) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let address: SocketAddr = {
        let url = reqwest::Url::parse(base)?;
        let host = url.host_str().ok_or_else(|| anyhow::anyhow!("no host in {base}"))?;
        format!("{host}:{}", url.port_or_known_default().unwrap_or(80)).parse()?
    };
    let (tokens, sessions) = setup(&http, base, plan.users, plan.sessions).await?;
    println!("setup: {} users, {} sessions of {} users each", tokens.len(), sessions.len(), tokens.len());

    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(plan.server_pid)?;

    // Phase 1: connect, authenticate (bearer on the upgrade), join.
    let stamps = Arc::new(Stamps::new(1 << 16));
    let received = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Latencies::new()));
    let opened = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..plan.parallel)
        .map(|_| {
            let (next, opened, tokens, sessions) =
                (Arc::clone(&next), Arc::clone(&opened), tokens.clone(), sessions.clone());
            let (stamps, received, latencies) = (Arc::clone(&stamps), Arc::clone(&received), Arc::clone(&latencies));
            let (sources, total) = (plan.sources.clone(), plan.connections);
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let source = sources[i % sources.len()];
                    let session = &sessions[i % sessions.len()];
                    let token = &tokens[i % tokens.len()];
                    let socket = open(address, source, token, session).await?;
                    opened.fetch_add(1, Ordering::Relaxed);
                    // Every connection keeps reading, as a client does; members
                    // of the measured session time the fan-out messages.
                    let (stamps, received, latencies) =
                        (Arc::clone(&stamps), Arc::clone(&received), Arc::clone(&latencies));
                    tokio::spawn(listen(socket, stamps, received, latencies));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    let connect_secs = started.elapsed().as_secs_f64();
    let connections = opened.load(Ordering::Relaxed);
    // Idle long enough for the allocator to return what the handshakes
    // freed (jemalloc's dirty pages decay within 10 s).
    tokio::time::sleep(plan.settle).await;
    let after = rss_kib(plan.server_pid)?;
    let per_connection = (after.saturating_sub(before)) as f64 / connections as f64;
    println!(
        "idle: {connections} connections in {connect_secs:.1} s ({:.0}/s); server RSS {:.1} -> {:.1} MiB: {per_connection:.2} KiB per connection",
        connections as f64 / connect_secs,
        before as f64 / 1024.0,
        after as f64 / 1024.0,
    );

    // Phase 2: fan-out in the first session.
    // Connection i joined session i % sessions.
    let member_count = connections.div_ceil(plan.sessions);
    let mut sender = open(address, plan.sources[0], &tokens[0], &sessions[0]).await?;
    let messages = (plan.fanout_seconds * 1000 / plan.interval.as_millis().max(1) as u64) as usize;
    let mut ticker = tokio::time::interval(plan.interval);
    received.store(0, Ordering::Relaxed);
    let cpu_before = crate::stream::cpu_seconds(plan.server_pid)?;
    let own_cpu_before = crate::stream::cpu_seconds(std::process::id())?;
    for seq in 0..messages {
        ticker.tick().await;
        let frame = json!({"event": "send_message", "data": {
            "sessionId": sessions[0], "content": format!("fan-out {seq}"), "aiReply": false,
            "clientMessageId": format!("fanout-{seq}"),
        }});
        stamps.stamp(seq);
        sender.send_text(&frame.to_string()).await?;
        // The sender hears its own messages too; keep its socket drained.
        while let Some(_frame) = sender.take_frame() {}
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::ZERO, sender.fill()).await {}
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = received.load(Ordering::Relaxed);
    let expected = (messages * member_count) as u64;
    let cpu = crate::stream::cpu_seconds(plan.server_pid)? - cpu_before;
    let own_cpu = crate::stream::cpu_seconds(std::process::id())? - own_cpu_before;
    println!(
        "fan-out: {member_count} members, {messages} messages every {} ms: {} ; received {got} of {expected}, lost {}",
        plan.interval.as_millis(),
        latencies.lock().map(|l| l.summary()).unwrap_or_default(),
        expected.saturating_sub(got),
    );
    println!(
        "server CPU during fan-out: {cpu:.2} s, {:.2} ms per message, {:.1} us per delivered frame",
        cpu * 1e3 / messages.max(1) as f64,
        cpu * 1e6 / got.max(1) as f64
    );
    // The client shares the cores: what it spends reading is time the
    // server's writes wait for.
    println!(
        "load generator CPU during fan-out: {own_cpu:.2} s, {:.1} us per received frame",
        own_cpu * 1e6 / got.max(1) as f64
    );
    Ok(())
}

/// Registers `users` accounts and `sessions` sessions owned by the first,
/// with every user a participant of every session.
async fn setup(
    http: &reqwest::Client,
    base: &str,
    users: usize,
    sessions: usize,
) -> anyhow::Result<(Arc<Vec<String>>, Arc<Vec<String>>)> {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let emails: Vec<String> = (0..users).map(|u| format!("ws-{run}-{u}@example.com")).collect();
    let mut tokens = Vec::with_capacity(users);
    for chunk in emails.chunks(4) {
        let registrations = chunk.iter().map(|email| {
            http.post(format!("{base}/api/v1/auth/register"))
                .json(&json!({"email": email, "password": PASSWORD, "name": "Bench"}))
                .send()
        });
        for res in futures::future::join_all(registrations).await {
            let body: Value = res?.json().await?;
            let token = body["data"]["tokens"]["accessToken"].as_str();
            tokens.push(token.ok_or_else(|| anyhow::anyhow!("register failed: {body}"))?.to_owned());
        }
    }
    let mut ids = Vec::with_capacity(sessions);
    for s in 0..sessions {
        let body: Value = http
            .post(format!("{base}/api/v1/chat/sessions"))
            .bearer_auth(&tokens[0])
            .json(&json!({"title": format!("bench {s}")}))
            .send()
            .await?
            .json()
            .await?;
        let id = body["data"]["id"].as_str().ok_or_else(|| anyhow::anyhow!("session failed: {body}"))?.to_owned();
        let adds = emails[1..].iter().map(|email| {
            http.post(format!("{base}/api/v1/chat/sessions/{id}/participants"))
                .bearer_auth(&tokens[0])
                .json(&json!({"email": email}))
                .send()
        });
        for res in futures::future::join_all(adds).await {
            anyhow::ensure!(res?.status().as_u16() == 201, "adding a participant failed");
        }
        ids.push(id);
    }
    Ok((Arc::new(tokens), Arc::new(ids)))
}

/// Connects from `source`, authenticates on the upgrade, joins `session`.
/// A deliberately thin client (the handshake by hand, frames parsed in
/// place): the benchmark shares the machine with the server, and a heavy
/// client would measure itself.
async fn open(server: SocketAddr, source: IpAddr, token: &str, session: &str) -> anyhow::Result<Raw> {
    let socket = if source.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.bind(SocketAddr::new(source, 0))?;
    let mut tcp = socket.connect(server).await?;
    tcp.set_nodelay(true)?;
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await?;
    let mut raw = Raw { tcp, buf: Vec::with_capacity(4096) };
    let head_end = loop {
        if let Some(at) = raw.buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        anyhow::ensure!(raw.fill().await? > 0, "closed during the handshake");
    };
    anyhow::ensure!(raw.buf.starts_with(b"HTTP/1.1 101"), "upgrade refused: {}", String::from_utf8_lossy(&raw.buf));
    raw.buf.drain(..head_end);
    raw.send_text(&json!({"event": "join_session", "data": {"sessionId": session}}).to_string()).await?;
    loop {
        let text = raw.next_text().await?.ok_or_else(|| anyhow::anyhow!("closed while joining"))?;
        if text.contains("\"joined_session\"") {
            return Ok(raw);
        }
        anyhow::ensure!(!text.contains("\"error\""), "join refused: {text}");
    }
}

/// A WebSocket client on a bare TCP stream.
struct Raw {
    tcp: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn fill(&mut self) -> std::io::Result<usize> {
        use tokio::io::AsyncReadExt as _;
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(4096);
        }
        self.tcp.read_buf(&mut self.buf).await
    }

    /// Sends a text frame, masked as clients must (with a zero key, which
    /// leaves the payload as it is).
    async fn send_text(&mut self, text: &str) -> std::io::Result<()> {
        self.send_frame(0x1, text.as_bytes()).await
    }

    async fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        let mut frame = vec![0x80 | opcode];
        let len = payload.len();
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend_from_slice(payload);
        self.tcp.write_all(&frame).await
    }

    /// The next text frame's payload; other frames are skipped. `None` when closed.
    async fn next_text(&mut self) -> anyhow::Result<Option<String>> {
        loop {
            if let Some((opcode, payload)) = self.take_frame() {
                match opcode {
                    0x1 => return Ok(Some(String::from_utf8(payload)?)),
                    0x8 => return Ok(None),
                    // Heartbeats: a client that does not answer is closed.
                    0x9 => self.send_frame(0xA, &payload).await?,
                    _ => continue,
                }
            }
            if self.fill().await? == 0 {
                return Ok(None);
            }
        }
    }

    /// A whole frame from the buffer, if there is one.
    fn take_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        let (len, start) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().ok()?) as usize, 10),
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        if b.len() < start + len {
            return None;
        }
        let opcode = b[0] & 0x0f;
        let payload = b[start..start + len].to_vec();
        self.buf.drain(..start + len);
        Some((opcode, payload))
    }
}

/// Reads until the connection ends; times every fan-out message.
async fn listen(
    mut socket: Raw,
    stamps: Arc<Stamps>,
    received: Arc<AtomicU64>,
    latencies: Arc<std::sync::Mutex<Latencies>>,
) {
    while let Ok(Some(text)) = socket.next_text().await {
        // Find the sequence number without parsing the whole frame.
        let Some(seq) = text.split("\"fanout-").nth(1).and_then(|rest| rest.split('"').next()) else { continue };
        let Ok(seq) = seq.parse::<usize>() else { continue };
        if let Some(elapsed) = stamps.since(seq) {
            received.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut latencies) = latencies.lock() {
                latencies.record(elapsed);
            }
        }
    }
}

/// When each fan-out message was sent, in nanoseconds since `origin`.
struct Stamps {
    origin: Instant,
    sent: Vec<AtomicU64>,
}

impl Stamps {
    fn new(capacity: usize) -> Self {
        Self { origin: Instant::now(), sent: (0..capacity).map(|_| AtomicU64::new(0)).collect() }
    }

    fn stamp(&self, seq: usize) {
        if let Some(slot) = self.sent.get(seq) {
            slot.store(self.origin.elapsed().as_nanos() as u64, Ordering::Release);
        }
    }

    fn since(&self, seq: usize) -> Option<Duration> {
        let sent = self.sent.get(seq)?.load(Ordering::Acquire);
        (sent != 0).then(|| self.origin.elapsed().saturating_sub(Duration::from_nanos(sent)))
    }
}

/// The resident set of a process, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for pid {pid}"))
}
