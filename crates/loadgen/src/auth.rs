//! The accounts benchmark: N loops logging in as fast as they can while one
//! prober measures `/health/live`, showing whether hashing starves the
//! async workers (it must not: argon2 runs on the blocking pool).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::stats::Latencies;

const PASSWORD: &str = "Bench-Marmot-2024";

pub async fn run(base: &str, concurrency: usize, seconds: u64) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency + 2).build()?;
    let email = format!("bench-{}@example.com", uuid::Uuid::now_v7().simple());
    let res = client
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD, "name": "Bench"}))
        .send()
        .await?;
    anyhow::ensure!(res.status().as_u16() == 201, "register failed: {}", res.text().await?);

    // Idle health baseline first, on its own.
    let idle = probe_health(&client, base, Duration::from_secs(2)).await?;

    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let logins = (0..concurrency).map(|_| {
        let (client, base, email) = (client.clone(), base.to_owned(), email.clone());
        tokio::spawn(async move {
            let mut latencies = Latencies::new();
            let (mut failures, mut turned_away) = (0u64, 0u64);
            while Instant::now() < deadline {
                let started = Instant::now();
                let res = client
                    .post(format!("{base}/api/v1/auth/login"))
                    .json(&json!({"email": email, "password": PASSWORD}))
                    .send()
                    .await;
                match res.as_ref().map(|r| (r.status().as_u16(), retry_after(r))) {
                    Ok((200, _)) => latencies.record(started.elapsed()),
                    // Busy: a well-behaved client waits as told before trying again.
                    Ok((503, Some(wait))) => {
                        turned_away += 1;
                        tokio::time::sleep(wait).await;
                    }
                    _ => failures += 1,
                }
            }
            (latencies, failures, turned_away)
        })
    });
    let logins: Vec<_> = logins.collect();
    let under_load =
        probe_health(&client, base, Duration::from_secs(seconds).saturating_sub(Duration::from_millis(200))).await?;

    let mut all = Latencies::new();
    let (mut failures, mut turned_away) = (0, 0);
    for task in logins {
        let (latencies, failed, busy) = task.await?;
        all.merge(&latencies);
        failures += failed;
        turned_away += busy;
    }
    // Over the time until the last login came back, which is past the
    // deadline when logins queue: dividing by the nominal seconds would count
    // the queue's drain as throughput.
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "logins: {:.1}/s over {:.1}s with {concurrency} loops ({}), failures={failures}, \
         turned away (503, retried after Retry-After)={turned_away}",
        all.count() as f64 / elapsed,
        elapsed,
        all.summary()
    );
    println!("health/live idle:        {}", idle.summary());
    println!("health/live under load:  {}", under_load.summary());
    Ok(())
}

/// Sequential GETs of `/health/live`, 1 ms apart, for `duration`.
async fn probe_health(client: &reqwest::Client, base: &str, duration: Duration) -> anyhow::Result<Latencies> {
    let mut latencies = Latencies::new();
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        let started = Instant::now();
        let res = client.get(format!("{base}/health/live")).send().await?;
        anyhow::ensure!(res.status().is_success(), "health answered {}", res.status());
        res.bytes().await?;
        latencies.record(started.elapsed());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(latencies)
}

/// A `Retry-After` in seconds, as the server sends it.
fn retry_after(res: &reqwest::Response) -> Option<Duration> {
    let secs = res.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.parse().ok()?;
    Some(Duration::from_secs(secs))
}
