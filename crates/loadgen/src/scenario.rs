//! The seed's k6 load test, reproduced (k6 cannot be installed here).
//!
//! Virtual users ramp up and down through stages, as k6's `ramping-vus`
//! executor does: the number of active VUs is interpolated linearly within
//! each stage. Each VU, in a loop: logs in (`POST /api/v1/auth/login`),
//! creates a chat session with the access token it got
//! (`POST /api/v1/chat/sessions`), then thinks (the script's `sleep(1)`).
//! A VU that is ramped down finishes the iteration it is in (k6's graceful
//! ramp-down). Each VU has its own account, registered before the clock
//! starts, and its own connection pool, as each k6 VU has its own
//! connections.
//!
//! The seed's checks: login under 500 ms, session creation under 1,000 ms.
//! Here a time check passes only when the request also succeeded (200 for
//! login, 201 for the session) within the limit. Status checks are reported
//! beside them, as a k6 script usually has them too. A request counts in
//! the stage in which it completes; latencies are those of successful
//! requests, from sending the request to reading the whole body.
//!
//! The model is k6's: closed loop, so when the server queues, each VU slows
//! down and the offered load falls (throughput is bounded by the server, and
//! latency shows the queue).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::stats::Latencies;

const PASSWORD: &str = "Bench-Marmot-2024";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Stages as DURATION:TARGET_VUS, comma-separated, like k6's `stages`
    /// (durations in ms, s or m). The default takes 2 min 20 s.
    #[arg(
        long,
        default_value = "30s:100,30s:100,30s:200,30s:200,20s:0",
        value_delimiter = ',',
        value_parser = parse_stage
    )]
    stages: Vec<Stage>,
    /// Think time at the end of each iteration (the k6 script's `sleep(1)`).
    #[arg(long, default_value_t = 1000)]
    think_ms: u64,
    /// The login check: a successful login within this many milliseconds.
    #[arg(long, default_value_t = 500)]
    login_check_ms: u64,
    /// The session check: a session created within this many milliseconds.
    #[arg(long, default_value_t = 1000)]
    session_check_ms: u64,
    /// Registrations in flight at once before the run (each is one argon2
    /// hash, ~20 ms of CPU; the server hashes one per core).
    #[arg(long, default_value_t = 2)]
    register_parallel: usize,
    /// Timeout of each request in seconds (k6's default is 60).
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
    /// Seconds between progress lines (0 for none).
    #[arg(long, default_value_t = 10)]
    progress_secs: u64,
    /// The server's process id, for its CPU time per stage.
    #[arg(long)]
    server_pid: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
pub struct Stage {
    duration: Duration,
    target: usize,
}

fn parse_stage(text: &str) -> Result<Stage, String> {
    let (duration, target) = text.split_once(':').ok_or_else(|| format!("`{text}`: expected DURATION:TARGET"))?;
    let target = target.trim().parse().map_err(|e| format!("`{text}`: target: {e}"))?;
    let duration = duration.trim();
    let (number, unit) = duration.split_at(duration.find(|c: char| !c.is_ascii_digit()).unwrap_or(duration.len()));
    let number: u64 = number.parse().map_err(|e| format!("`{text}`: duration: {e}"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "s" | "" => Duration::from_secs(number),
        "m" => Duration::from_secs(number * 60),
        other => return Err(format!("`{text}`: unknown unit `{other}` (ms, s or m)")),
    };
    if duration.is_zero() {
        return Err(format!("`{text}`: a stage needs a duration"));
    }
    Ok(Stage { duration, target })
}

/// What happened to the requests that completed in one stage (or window).
struct Tally {
    login: Latencies,
    session: Latencies,
    logins: u64,
    login_ok: u64,
    login_in_time: u64,
    sessions: u64,
    session_ok: u64,
    session_in_time: u64,
    iterations: u64,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            login: Latencies::new(),
            session: Latencies::new(),
            logins: 0,
            login_ok: 0,
            login_in_time: 0,
            sessions: 0,
            session_ok: 0,
            session_in_time: 0,
            iterations: 0,
            errors: BTreeMap::new(),
        }
    }

    fn requests(&self) -> u64 {
        self.logins + self.sessions
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Passed and failed checks: status and time, of login and of session.
    fn checks(&self) -> (u64, u64) {
        let passed = self.login_ok + self.login_in_time + self.session_ok + self.session_in_time;
        (passed, 2 * self.requests() - passed)
    }

    fn merge(&mut self, other: &Tally) {
        self.login.merge(&other.login);
        self.session.merge(&other.session);
        self.logins += other.logins;
        self.login_ok += other.login_ok;
        self.login_in_time += other.login_in_time;
        self.sessions += other.sessions;
        self.session_ok += other.session_ok;
        self.session_in_time += other.session_in_time;
        self.iterations += other.iterations;
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
    }
}

#[derive(Clone, Copy)]
enum Request {
    Login,
    Session,
}

/// Shared by the VUs: the clock, the stage boundaries and the tallies.
struct Run {
    start: Instant,
    /// End of each stage, from the start.
    ends: Vec<Duration>,
    stages: Vec<Mutex<Tally>>,
    window: Mutex<Tally>,
    login_limit: Duration,
    session_limit: Duration,
}

impl Run {
    fn stage_at(&self, at: Instant) -> usize {
        let elapsed = at.saturating_duration_since(self.start);
        self.ends.iter().position(|end| elapsed < *end).unwrap_or(self.ends.len() - 1)
    }

    fn record(&self, request: Request, elapsed: Duration, outcome: &Result<(), String>) {
        let stage = self.stage_at(Instant::now());
        for tally in [&self.stages[stage], &self.window] {
            let mut guard = tally.lock().unwrap_or_else(PoisonError::into_inner);
            let t = &mut *guard;
            let (latencies, count, ok, in_time, limit) = match request {
                Request::Login => {
                    (&mut t.login, &mut t.logins, &mut t.login_ok, &mut t.login_in_time, self.login_limit)
                }
                Request::Session => {
                    (&mut t.session, &mut t.sessions, &mut t.session_ok, &mut t.session_in_time, self.session_limit)
                }
            };
            *count += 1;
            if outcome.is_ok() {
                latencies.record(elapsed);
                *ok += 1;
                if elapsed < limit {
                    *in_time += 1;
                }
            }
            if let Err(kind) = outcome {
                *t.errors.entry(kind.clone()).or_default() += 1;
            }
        }
    }

    fn iteration_done(&self) {
        let stage = self.stage_at(Instant::now());
        for tally in [&self.stages[stage], &self.window] {
            tally.lock().unwrap_or_else(PoisonError::into_inner).iterations += 1;
        }
    }
}

/// The number of VUs `elapsed` into the run: linear within each stage, from
/// the previous stage's target (0 before the first) to this one's.
fn target_at(stages: &[Stage], elapsed: Duration) -> usize {
    let mut from = 0usize;
    let mut start = Duration::ZERO;
    for stage in stages {
        let end = start + stage.duration;
        if elapsed < end {
            let fraction = (elapsed - start).as_secs_f64() / stage.duration.as_secs_f64();
            let vus = from as f64 + (stage.target as f64 - from as f64) * fraction;
            return vus.round() as usize;
        }
        from = stage.target;
        start = end;
    }
    from
}

pub async fn run(base: &str, args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(!args.stages.is_empty(), "no stages");
    let max_vus = args.stages.iter().map(|s| s.target).max().unwrap_or(0);
    anyhow::ensure!(max_vus > 0, "no stage has any VU");
    let total: Duration = args.stages.iter().map(|s| s.duration).sum();
    println!(
        "scenario: {} stages over {:.0} s ({}), up to {max_vus} VUs, think {} ms; checks: login < {} ms, session < {} ms",
        args.stages.len(),
        total.as_secs_f64(),
        args.stages.iter().map(|s| format!("{}s:{}", s.duration.as_secs_f64(), s.target)).collect::<Vec<_>>().join(","),
        args.think_ms,
        args.login_check_ms,
        args.session_check_ms,
    );

    // One account per VU, registered before the clock starts.
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let setup = reqwest::Client::builder().pool_max_idle_per_host(args.register_parallel).build()?;
    let registering = Instant::now();
    let emails: Vec<String> = (0..max_vus).map(|i| format!("k6-{run_id}-{i}@example.com")).collect();
    let registered: Vec<anyhow::Result<()>> =
        futures::stream::iter(emails.iter().map(|email| register(&setup, base, email)))
            .buffer_unordered(args.register_parallel.max(1))
            .collect()
            .await;
    registered.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    println!(
        "setup: {max_vus} accounts registered in {:.1} s, {} at a time",
        registering.elapsed().as_secs_f64(),
        args.register_parallel
    );

    // Every VU's client is built before the clock starts too.
    let timeout = Duration::from_secs(args.timeout_secs);
    let clients = (0..max_vus)
        .map(|_| reqwest::Client::builder().pool_max_idle_per_host(1).tcp_nodelay(true).timeout(timeout).build())
        .collect::<Result<Vec<_>, _>>()?;

    let mut ends = Vec::with_capacity(args.stages.len());
    let mut end = Duration::ZERO;
    for stage in &args.stages {
        end += stage.duration;
        ends.push(end);
    }
    let run = Arc::new(Run {
        start: Instant::now(),
        ends,
        stages: args.stages.iter().map(|_| Mutex::new(Tally::new())).collect(),
        window: Mutex::new(Tally::new()),
        login_limit: Duration::from_millis(args.login_check_ms),
        session_limit: Duration::from_millis(args.session_check_ms),
    });
    // `Some(active VUs)` while the run lasts, `None` once it is over.
    let (targets, target) = watch::channel(Some(0usize));
    let think = Duration::from_millis(args.think_ms);
    let vus: Vec<_> = clients
        .into_iter()
        .zip(emails)
        .enumerate()
        .map(|(index, (client, email))| {
            let (run, target, base) = (Arc::clone(&run), target.clone(), base.to_owned());
            tokio::spawn(vu(index, client, base, email, think, run, target))
        })
        .collect();
    drop(target);

    let cpu_at = |pid: Option<u32>| -> Cpu {
        Cpu {
            at: Instant::now(),
            server: pid.and_then(|p| crate::stream::cpu_seconds(p).ok()),
            loadgen: crate::stream::cpu_seconds(std::process::id()).ok(),
            machine: machine_busy_seconds().ok(),
        }
    };
    let mut cpu = vec![cpu_at(args.server_pid)];
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let progress = Duration::from_secs(args.progress_secs);
    let mut next_progress = progress;
    loop {
        ticker.tick().await;
        let elapsed = run.start.elapsed();
        while cpu.len() < run.ends.len() && elapsed >= run.ends[cpu.len() - 1] {
            cpu.push(cpu_at(args.server_pid));
        }
        if elapsed >= total {
            break;
        }
        let vus = target_at(&args.stages, elapsed);
        targets.send_if_modified(|current| {
            let changed = *current != Some(vus);
            *current = Some(vus);
            changed
        });
        if !progress.is_zero() && elapsed >= next_progress {
            let window =
                std::mem::replace(&mut *run.window.lock().unwrap_or_else(PoisonError::into_inner), Tally::new());
            progress_line(elapsed, vus, progress, &window, &args);
            next_progress += progress;
        }
    }
    // The end: VUs finish the iteration they are in (graceful stop).
    let _ = targets.send(None);
    for vu in vus {
        vu.await?;
    }
    cpu.push(cpu_at(args.server_pid));

    report(&run, &args, &cpu);
    Ok(())
}

async fn register(client: &reqwest::Client, base: &str, email: &str) -> anyhow::Result<()> {
    let res = client
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD, "name": "k6 VU"}))
        .send()
        .await?;
    let status = res.status();
    anyhow::ensure!(
        status.as_u16() == 201,
        "register answered {status} (raise SPECGEN_RATE_REGISTER for this many accounts): {}",
        res.text().await.unwrap_or_default()
    );
    Ok(())
}

/// One virtual user: waits until the ramp makes it active, then loops.
async fn vu(
    index: usize,
    client: reqwest::Client,
    base: String,
    email: String,
    think: Duration,
    run: Arc<Run>,
    mut target: watch::Receiver<Option<usize>>,
) {
    let (login_url, sessions_url) = (format!("{base}/api/v1/auth/login"), format!("{base}/api/v1/chat/sessions"));
    let login_body = json!({"email": email, "password": PASSWORD, "deviceId": format!("k6-vu-{index}")});
    loop {
        // Active while the ramp's target is above this VU's index.
        loop {
            let current = *target.borrow_and_update();
            match current {
                None => return,
                Some(active) if index < active => break,
                Some(_) => {
                    if target.changed().await.is_err() {
                        return;
                    }
                }
            }
        }

        let started = Instant::now();
        let signed_in = login(&client, &login_url, &login_body).await;
        run.record(Request::Login, started.elapsed(), &signed_in.as_ref().map(|_| ()).map_err(Clone::clone));
        if let Ok(token) = signed_in {
            let started = Instant::now();
            let created = create_session(&client, &sessions_url, &token).await;
            run.record(Request::Session, started.elapsed(), &created);
        }
        run.iteration_done();

        // Think, unless the run ends meanwhile.
        let wake = tokio::time::Instant::now() + think;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(wake) => break,
                changed = target.changed() => {
                    if changed.is_err() || target.borrow_and_update().is_none() {
                        return;
                    }
                }
            }
        }
    }
}

/// The access token, or what went wrong.
async fn login(client: &reqwest::Client, url: &str, body: &Value) -> Result<String, String> {
    let res = client.post(url).json(body).send().await.map_err(|e| transport("login", &e))?;
    let status = res.status().as_u16();
    let body: Value = res.json().await.map_err(|e| transport("login", &e))?;
    if status != 200 {
        return Err(format!("login: HTTP {status} {}", body["error"]["code"].as_str().unwrap_or("")));
    }
    body["data"]["tokens"]["accessToken"].as_str().map(str::to_owned).ok_or_else(|| "login: no token".to_owned())
}

async fn create_session(client: &reqwest::Client, url: &str, token: &str) -> Result<(), String> {
    let res = client
        .post(url)
        .bearer_auth(token)
        .json(&json!({"title": "k6 session"}))
        .send()
        .await
        .map_err(|e| transport("session", &e))?;
    let status = res.status().as_u16();
    let body: Value = res.json().await.map_err(|e| transport("session", &e))?;
    if status != 201 {
        return Err(format!("session: HTTP {status} {}", body["error"]["code"].as_str().unwrap_or("")));
    }
    body["data"]["id"].as_str().map(|_| ()).ok_or_else(|| "session: no id".to_owned())
}

fn transport(what: &str, error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_decode() {
        "bad body"
    } else {
        "transport"
    };
    format!("{what}: {kind}")
}

/// CPU seconds used so far: by the server, by this process, by the machine.
struct Cpu {
    at: Instant,
    server: Option<f64>,
    loadgen: Option<f64>,
    machine: Option<f64>,
}

/// Busy CPU seconds of the whole machine (every core), from /proc/stat.
fn machine_busy_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().ok_or_else(|| anyhow::anyhow!("empty /proc/stat"))?;
    let ticks: Vec<f64> = line.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    anyhow::ensure!(ticks.len() >= 8, "unreadable /proc/stat: {line}");
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7];
    Ok(busy / 100.0)
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 { "-".to_owned() } else { format!("{:.1}%", part as f64 * 100.0 / whole as f64) }
}

fn quantiles(latencies: &Latencies) -> [String; 4] {
    if latencies.count() == 0 {
        return ["-".to_owned(), "-".to_owned(), "-".to_owned(), "-".to_owned()];
    }
    [
        ms(latencies.quantile_ms(0.50)),
        ms(latencies.quantile_ms(0.95)),
        ms(latencies.quantile_ms(0.99)),
        ms(latencies.max_ms()),
    ]
}

fn progress_line(elapsed: Duration, vus: usize, window: Duration, t: &Tally, args: &Args) {
    let secs = window.as_secs_f64();
    let [l50, l95, ..] = quantiles(&t.login);
    let [s50, s95, ..] = quantiles(&t.session);
    println!(
        "t={:>4.0}s vus={vus:>3}  {:>6.1} logins/s  login p50 {l50} p95 {l95} ms (< {} ms: {})  session p50 {s50} p95 {s95} ms  errors {}",
        elapsed.as_secs_f64(),
        t.logins as f64 / secs,
        args.login_check_ms,
        percent(t.login_in_time, t.logins),
        t.error_count(),
    );
}

fn report(run: &Run, args: &Args, cpu: &[Cpu]) {
    println!();
    println!(
        "| stage | VUs | s | iterations | requests | req/s | login p50 | p95 | p99 | max | session p50 | p95 | p99 | max | login < {} ms | session < {} ms | checks passed | errors |",
        args.login_check_ms, args.session_check_ms
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut all = Tally::new();
    let mut from = 0;
    let tallies: Vec<Tally> = run
        .stages
        .iter()
        .map(|t| std::mem::replace(&mut *t.lock().unwrap_or_else(PoisonError::into_inner), Tally::new()))
        .collect();
    let row = |label: String, vus: String, secs: f64, t: &Tally| {
        let [l50, l95, l99, lmax] = quantiles(&t.login);
        let [s50, s95, s99, smax] = quantiles(&t.session);
        let (passed, failed) = t.checks();
        println!(
            "| {label} | {vus} | {secs:.0} | {} | {} | {:.1} | {l50} | {l95} | {l99} | {lmax} | {s50} | {s95} | {s99} | {smax} | {} | {} | {} | {} |",
            t.iterations,
            t.requests(),
            t.requests() as f64 / secs,
            percent(t.login_in_time, t.logins),
            percent(t.session_in_time, t.sessions),
            percent(passed, passed + failed),
            t.error_count(),
        );
    };
    for (i, (stage, tally)) in args.stages.iter().zip(&tallies).enumerate() {
        let kind = if stage.target == from { "hold" } else { "ramp" };
        let vus = if stage.target == from { format!("{from}") } else { format!("{from}→{}", stage.target) };
        // The last stage lasts until the last VU has finished its iteration.
        let secs = cpu[i + 1].at.duration_since(cpu[i].at).as_secs_f64();
        row(format!("{} {kind}", i + 1), vus, secs, tally);
        all.merge(tally);
        from = stage.target;
    }
    let total_secs = cpu[cpu.len() - 1].at.duration_since(cpu[0].at).as_secs_f64();
    row("all".to_owned(), format!("max {}", args.stages.iter().map(|s| s.target).max().unwrap_or(0)), total_secs, &all);
    println!("(latencies in ms, of successful requests; a request counts in the stage in which it completes)");

    println!();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "CPU per stage, in cores busy (of {cores}): server | load generator | rest of the machine; server CPU per iteration"
    );
    for (i, pair) in cpu.windows(2).enumerate() {
        let secs = pair[1].at.duration_since(pair[0].at).as_secs_f64();
        let busy = |f: fn(&Cpu) -> Option<f64>| match (f(&pair[0]), f(&pair[1])) {
            (Some(a), Some(b)) => Some((b - a) / secs),
            _ => None,
        };
        let (server, loadgen, machine) = (busy(|c| c.server), busy(|c| c.loadgen), busy(|c| c.machine));
        let show = |v: Option<f64>| v.map_or_else(|| "?".to_owned(), |v| format!("{v:.2}"));
        let rest = match (server, loadgen, machine) {
            (Some(s), Some(l), Some(m)) => Some((m - s - l).max(0.0)),
            (None, Some(l), Some(m)) => Some((m - l).max(0.0)),
            _ => None,
        };
        let per_iteration = match (server, tallies.get(i).map(|t| t.iterations)) {
            (Some(s), Some(n)) if n > 0 => format!("{:.1} ms", s * secs * 1000.0 / n as f64),
            _ => "?".to_owned(),
        };
        println!("  stage {}: {} | {} | {} ; {per_iteration}", i + 1, show(server), show(loadgen), show(rest));
    }

    println!();
    let check = |name: String, passed: u64, total: u64| {
        let mark = if passed == total { '✓' } else { '✗' };
        println!("     {mark} {name:.<32} {:>6}  ✓ {passed}  ✗ {}", percent(passed, total), total - passed);
    };
    check("login status is 200".to_owned(), all.login_ok, all.logins);
    check(format!("login under {} ms", args.login_check_ms), all.login_in_time, all.logins);
    check("session status is 201".to_owned(), all.session_ok, all.sessions);
    check(format!("session under {} ms", args.session_check_ms), all.session_in_time, all.sessions);
    let (passed, failed) = all.checks();
    println!();
    println!("     {:.<34} {:>6}  ✓ {passed}  ✗ {failed}", "checks", percent(passed, passed + failed));
    let trend = |name: &str, l: &Latencies| {
        if l.count() == 0 {
            println!("     {name:.<34} none");
            return;
        }
        println!(
            "     {name:.<34} avg={} med={} p(95)={} p(99)={} max={} ms",
            ms(l.mean_ms()),
            ms(l.quantile_ms(0.5)),
            ms(l.quantile_ms(0.95)),
            ms(l.quantile_ms(0.99)),
            ms(l.max_ms())
        );
    };
    trend("login duration", &all.login);
    trend("session duration", &all.session);
    println!("     {:.<34} {}  {:.1}/s", "http_reqs", all.requests(), all.requests() as f64 / total_secs);
    println!("     {:.<34} {}  {:.1}/s", "iterations", all.iterations, all.iterations as f64 / total_secs);
    println!("     {:.<34} {}", "vus_max", args.stages.iter().map(|s| s.target).max().unwrap_or(0));
    if all.errors.is_empty() {
        println!("     {:.<34} none", "errors");
    } else {
        for (kind, n) in &all.errors {
            println!("     {:.<34} {n}", format!("error {kind}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_parse_like_k6() {
        let stage = parse_stage("30s:100").unwrap();
        assert_eq!((stage.duration, stage.target), (Duration::from_secs(30), 100));
        assert_eq!(parse_stage("2m:0").unwrap().duration, Duration::from_secs(120));
        assert_eq!(parse_stage("500ms:3").unwrap().duration, Duration::from_millis(500));
        assert!(parse_stage("30x:1").is_err());
        assert!(parse_stage("0s:1").is_err());
        assert!(parse_stage("30s").is_err());
    }

    #[test]
    fn targets_ramp_linearly_and_hold() {
        let stages = [parse_stage("10s:100").unwrap(), parse_stage("10s:100").unwrap(), parse_stage("10s:0").unwrap()];
        assert_eq!(target_at(&stages, Duration::ZERO), 0);
        assert_eq!(target_at(&stages, Duration::from_secs(5)), 50);
        assert_eq!(target_at(&stages, Duration::from_secs(15)), 100);
        assert_eq!(target_at(&stages, Duration::from_secs(25)), 50);
        assert_eq!(target_at(&stages, Duration::from_secs(40)), 0);
    }
}
