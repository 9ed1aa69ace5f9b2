//! Throughput and added latency of the model client against the local
//! scripted server, at concurrency 1, 16 and 64.
//!
//! "Added" latency compares the full `Client` (semaphore, retries wrapper,
//! budget, pricing, JSON building and parsing) with a bare reqwest POST of
//! the same body to the same server at the same concurrency. Bounded: a
//! fixed number of requests per run, all to 127.0.0.1.
//!
//! Run: `cargo bench --bench model_client --profile dev` (debug build with
//! optimised dependencies) or plain `cargo bench --bench model_client`.

// A measuring harness: a panic is its report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use selfrepair::model::openai::OpenAiCompatible;
use selfrepair::model::{ApiKey, ChatRequest, Client, ClientOptions, Message, Model};
use selfrepair_testkit::{Reply, TestServer};

const LEVELS: [usize; 3] = [1, 16, 64];

struct Stats {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

/// Latencies and wall time of one or more runs, pooled.
#[derive(Default)]
struct Samples {
    lat: Vec<Duration>,
    wall: Duration,
}

impl Samples {
    fn add(&mut self, other: Samples) {
        self.lat.extend(other.lat);
        self.wall += other.wall;
    }
    fn stats(mut self) -> Stats {
        self.lat.sort();
        Stats {
            rps: self.lat.len() as f64 / self.wall.as_secs_f64(),
            p50: percentile(&self.lat, 0.50),
            p99: percentile(&self.lat, 0.99),
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Run `total` calls of `call` from `conc` workers; collect per-call latency.
async fn drive<F, Fut>(conc: usize, total: usize, call: F) -> Samples
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..conc {
        let call = call.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                let ok = call().await;
                assert!(ok, "call failed during benchmark");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::with_capacity(total);
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    Samples {
        lat: all,
        wall: started.elapsed(),
    }
}

fn request() -> ChatRequest {
    ChatRequest::new(vec![
        Message::system("You repair Python code."),
        Message::user("def add(a, b):\n    return a - b\n# fix the bug"),
    ])
}

fn client(server: &TestServer, conc: usize, run_dir: Option<&std::path::Path>) -> Arc<Client> {
    let inner = OpenAiCompatible::new(
        "openai",
        "gpt-4o-mini",
        &server.openai_base(),
        Some(ApiKey::new("sk-bench")),
        true,
    )
    .expect("provider");
    let opts = ClientOptions {
        concurrency: conc,
        ..ClientOptions::default()
    };
    Arc::new(Client::new(Arc::new(inner), opts, run_dir).expect("client"))
}

async fn bench_client(
    server: &TestServer,
    conc: usize,
    total: usize,
    run_dir: Option<&std::path::Path>,
) -> Samples {
    let c = client(server, conc, run_dir);
    let req = Arc::new(request());
    // Warm the connection pool and the tokenizer-free fast path.
    for _ in 0..conc.min(8) {
        c.complete(&req).await.expect("warm-up");
    }
    drive(conc, total, move || {
        let c = c.clone();
        let req = req.clone();
        async move { c.complete(&req).await.is_ok() }
    })
    .await
}

async fn bench_raw(server: &TestServer, conc: usize, total: usize) -> Samples {
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .build()
        .expect("client");
    let url = format!("{}/chat/completions", server.openai_base());
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You repair Python code."},
            {"role": "user", "content": "def add(a, b):\n    return a - b\n# fix the bug"}
        ]
    });
    let body = Arc::new(serde_json::to_vec(&body).expect("json"));
    for _ in 0..conc.min(8) {
        let _ = http.post(&url).body(body.as_ref().clone()).send().await;
    }
    drive(conc, total, move || {
        let http = http.clone();
        let url = url.clone();
        let body = body.clone();
        async move {
            match http
                .post(&url)
                .header("content-type", "application/json")
                .body(body.as_ref().clone())
                .send()
                .await
            {
                Ok(r) => r.bytes().await.is_ok(),
                Err(_) => false,
            }
        }
    })
    .await
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn signed_ms(a: Duration, b: Duration) -> String {
    format!("{:+.3} ms", (a.as_secs_f64() - b.as_secs_f64()) * 1000.0)
}

fn header() {
    println!(
        "{:>5} | {:>10} {:>10} {:>10} | {:>10} {:>10} {:>10} | {:>11} {:>11}",
        "conc", "client r/s", "p50", "p99", "raw r/s", "p50", "p99", "added p50", "added p99"
    );
}

/// Raw and client runs alternate in rounds so that load from anything else
/// on the machine hits both alike.
async fn row(server: &TestServer, conc: usize, total: usize) {
    const ROUNDS: usize = 5;
    let (mut raw, mut cl) = (Samples::default(), Samples::default());
    for _ in 0..ROUNDS {
        raw.add(bench_raw(server, conc, total / ROUNDS).await);
        cl.add(bench_client(server, conc, total / ROUNDS, None).await);
    }
    let (raw, cl) = (raw.stats(), cl.stats());
    println!(
        "{conc:>5} | {:>10.0} {:>10} {:>10} | {:>10.0} {:>10} {:>10} | {:>11} {:>11}",
        cl.rps,
        ms(cl.p50),
        ms(cl.p99),
        raw.rps,
        ms(raw.p50),
        ms(raw.p99),
        signed_ms(cl.p50, raw.p50),
        signed_ms(cl.p99, raw.p99),
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let server = TestServer::start().await.expect("server");
        server.set_recording(false);
        let answer = Reply::text("def add(a, b):\n    return a + b");
        let profile = if cfg!(debug_assertions) {
            "debug build (dependencies optimised)"
        } else {
            "optimised build"
        };
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!("model client benchmark: {profile}, {cores} cores, client and server in one process");

        // A: the server answers at once, so client and server compete for
        // the CPU and latency at high concurrency is mostly queueing.
        println!("\nA. instant server (throughput ceiling)");
        header();
        server.set_default(answer.clone());
        for conc in LEVELS {
            row(&server, conc, if conc == 1 { 2_000 } else { 10_000 }).await;
        }

        // B: the server takes 20 ms, like a (very fast) model; the CPU is
        // not saturated, so "added" is the layer's own cost per call.
        println!("\nB. server with 20 ms model latency");
        header();
        server.set_default(Reply::slow(Duration::from_millis(20), answer.clone()));
        for conc in LEVELS {
            row(&server, conc, conc * 100).await;
        }

        // The fsync'd transcript on, at 64, against the instant server.
        server.set_default(answer);
        let dir = std::env::temp_dir().join(format!("selfrepair-bench-{}", std::process::id()));
        let with_t = bench_client(&server, 64, 5_000, Some(&dir)).await.stats();
        println!(
            "\nC. instant server, concurrency 64, transcript on (group-committed fsync): {:.0} r/s, p50 {}, p99 {}",
            with_t.rps,
            ms(with_t.p50),
            ms(with_t.p99)
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}
