//! The streaming benchmark: what Spec Gen adds to the time to first token.
//! A fake Anthropic upstream answers its first byte after a fixed delay and
//! then streams 50 chunks; the client measures the time from sending a
//! message (SSE) to its first `message_chunk`, minus the upstream's own time.
//! Two figures: minus the nominal delay (as in every run before the fake
//! reported its own time), and minus the time the fake itself took from
//! reading the request to writing its first delta, which it writes into that
//! delta's text: its timer slack and preamble writes are then not counted.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::json;
use specgen_test_support::ai::{FakeBehaviour, FakeUpstream, FakeWire, upstream_own_time, upstream_received_at};

use crate::stats::Latencies;

/// Runs a fake upstream until `seconds` pass, printing its base URL first.
pub async fn fake_upstream(first_byte_ms: u64, chunks: usize, chunk_ms: u64, seconds: u64) -> anyhow::Result<()> {
    let chunks = (0..chunks).map(|i| format!("tok{i} ")).collect();
    let fake = FakeUpstream::start(
        FakeWire::Anthropic,
        FakeBehaviour::FirstByteAfter {
            delay: Duration::from_millis(first_byte_ms),
            chunks,
            chunk_delay: Duration::from_millis(chunk_ms),
        },
    )
    .await;
    println!("{}", fake.base_url());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    Ok(())
}

/// CPU seconds (user + system) the process has used so far.
pub(crate) fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| anyhow::anyhow!("unreadable /proc stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    // USER_HZ is 100 on Linux whatever the kernel's own tick.
    Ok(ticks / 100.0)
}

async fn session(client: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<String> {
    let res = client
        .post(format!("{base}/api/v1/chat/sessions"))
        .bearer_auth(token)
        .json(&json!({"title": "bench"}))
        .send()
        .await?;
    let body: serde_json::Value = res.json().await?;
    body["data"]["id"].as_str().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("no session: {body}"))
}

/// One streamed reply as the client saw it.
struct Reply {
    /// From sending the request to reading the first `message_chunk`.
    first_chunk: Duration,
    /// The upstream's own time to its first delta, as it reported it.
    upstream_own: Option<Duration>,
    /// From sending the request to the upstream reading it: the part of the
    /// added time spent before the provider is called (auth, access, the
    /// user message's write, context, routing, the upstream connection).
    before_upstream: Option<Duration>,
    completed: bool,
}

async fn one_reply(client: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<Reply> {
    let started = Instant::now();
    let started_at = std::time::SystemTime::now();
    let res = client
        .post(url)
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .json(&json!({"content": "Tell me something about benchmarks, please."}))
        .send()
        .await?;
    anyhow::ensure!(res.status().is_success(), "send answered {}", res.status());
    let mut body = res.bytes_stream();
    let mut seen = String::new();
    let mut first = None;
    while let Some(bytes) = body.next().await {
        seen.push_str(&String::from_utf8_lossy(&bytes?));
        if first.is_none() && seen.contains("event: message_chunk") {
            first = Some(started.elapsed());
        }
    }
    let first_chunk = first.ok_or_else(|| anyhow::anyhow!("no chunk in: {seen}"))?;
    let first_text = first_chunk_text(&seen);
    let received_at = first_text.as_deref().and_then(upstream_received_at);
    Ok(Reply {
        first_chunk,
        upstream_own: first_text.as_deref().and_then(upstream_own_time),
        before_upstream: received_at.and_then(|at| at.duration_since(started_at).ok()),
        completed: seen.contains("event: message_complete"),
    })
}

/// The `content` of the first `message_chunk` event in an SSE body.
fn first_chunk_text(body: &str) -> Option<String> {
    let event = &body[body.find("event: message_chunk")?..];
    let data = event.lines().find_map(|line| line.strip_prefix("data: "))?;
    let chunk: serde_json::Value = serde_json::from_str(data).ok()?;
    chunk["content"].as_str().map(str::to_owned)
}

/// What the benchmark runs.
pub struct Plan {
    /// Concurrent streams, one level after the other.
    pub levels: Vec<usize>,
    pub seconds: u64,
    /// The fake's nominal first-byte delay, subtracted for the first figure.
    pub upstream_delay: Duration,
    /// The streams' first requests are spread over this long.
    pub stagger: Duration,
    /// Each stream waits this long after a reply before its next message,
    /// like a person reading it; zero sends at once.
    pub think: Duration,
    pub server_pid: u32,
    /// Where to write every reply's timings, if anywhere.
    pub timeline: Option<std::path::PathBuf>,
}

/// One reply's timings for the timeline, in microseconds since the level
/// started (when it was sent, when it ended) or since it was sent (its first
/// chunk, the upstream's own time).
struct Timed {
    stream: usize,
    sent: u128,
    first_chunk: u128,
    upstream_own: Option<u128>,
    before_upstream: Option<u128>,
    ended: u128,
}

pub async fn run(base: &str, token: &str, plan: &Plan) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(512).build()?;
    let upstream_delay = plan.upstream_delay;
    let mut timeline = plan.timeline.as_ref().map(std::fs::File::create).transpose()?;
    if let Some(file) = &mut timeline {
        use std::io::Write as _;
        writeln!(file, "streams,stream,sent_us,first_chunk_after_us,upstream_own_us,ended_us,before_upstream_us")?;
    }
    for &streams in &plan.levels {
        let mut urls = Vec::with_capacity(streams);
        for _ in 0..streams {
            urls.push(format!("{base}/api/v1/chat/sessions/{}/messages", session(&client, base, token).await?));
        }
        let cpu_before = cpu_seconds(plan.server_pid)?;
        let level_start = Instant::now();
        let deadline = level_start + Duration::from_secs(plan.seconds);
        let tasks: Vec<_> = urls
            .into_iter()
            .enumerate()
            .map(|(i, url)| {
                let (client, token, think) = (client.clone(), token.to_owned(), plan.think);
                // Spread the streams' starts over one reply's length: paced
                // replies all last the same, so streams started together
                // would stay in lockstep and measure one burst after another.
                let start_after = plan.stagger.mul_f64(i as f64 / streams as f64);
                tokio::spawn(async move {
                    tokio::time::sleep(start_after).await;
                    let (mut nominal, mut exact) = (Latencies::new(), Latencies::new());
                    let (mut before, mut after) = (Latencies::new(), Latencies::new());
                    let (mut complete, mut failed) = (0u64, 0u64);
                    let mut timed = Vec::new();
                    while Instant::now() < deadline {
                        let sent = level_start.elapsed();
                        match one_reply(&client, &url, &token).await {
                            Ok(reply) => {
                                nominal.record(reply.first_chunk.saturating_sub(upstream_delay));
                                if let Some(own) = reply.upstream_own {
                                    exact.record(reply.first_chunk.saturating_sub(own));
                                    if let Some(pre) = reply.before_upstream {
                                        before.record(pre);
                                        after.record(reply.first_chunk.saturating_sub(own).saturating_sub(pre));
                                    }
                                }
                                if reply.completed {
                                    complete += 1
                                } else {
                                    failed += 1
                                }
                                timed.push(Timed {
                                    stream: i,
                                    sent: sent.as_micros(),
                                    first_chunk: reply.first_chunk.as_micros(),
                                    upstream_own: reply.upstream_own.map(|own| own.as_micros()),
                                    before_upstream: reply.before_upstream.map(|pre| pre.as_micros()),
                                    ended: level_start.elapsed().as_micros(),
                                });
                            }
                            Err(_) => failed += 1,
                        }
                        if !think.is_zero() {
                            tokio::time::sleep(think).await;
                        }
                    }
                    (nominal, exact, before, after, complete, failed, timed)
                })
            })
            .collect();
        let (mut nominal, mut exact) = (Latencies::new(), Latencies::new());
        let (mut before, mut after) = (Latencies::new(), Latencies::new());
        let (mut complete, mut failed) = (0, 0);
        for task in tasks {
            let (n, e, b, a, c, f, timed) = task.await?;
            nominal.merge(&n);
            exact.merge(&e);
            before.merge(&b);
            after.merge(&a);
            complete += c;
            failed += f;
            if let Some(file) = &mut timeline {
                use std::io::Write as _;
                for t in timed {
                    let own = t.upstream_own.map(|own| own.to_string()).unwrap_or_default();
                    let pre = t.before_upstream.map(|pre| pre.to_string()).unwrap_or_default();
                    writeln!(file, "{streams},{},{},{},{own},{},{pre}", t.stream, t.sent, t.first_chunk, t.ended)?;
                }
            }
        }
        let cpu = cpu_seconds(plan.server_pid)? - cpu_before;
        let (seconds, first_byte_ms) = (plan.seconds, upstream_delay.as_millis());
        println!(
            "streams={streams:>3}: replies={complete} ({:.1}/s) failed={failed} server CPU/reply={:.3}ms\n  \
             added TTFT, minus the nominal {first_byte_ms} ms: {}\n  \
             added TTFT, minus the upstream's own time:  {}\n    \
             of which before the upstream read the request: {}\n    \
             and after its first delta:                     {}",
            complete as f64 / seconds as f64,
            if complete > 0 { cpu * 1000.0 / complete as f64 } else { f64::NAN },
            nominal.summary(),
            exact.summary(),
            before.summary(),
            after.summary(),
        );
    }
    Ok(())
}
