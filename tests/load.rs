//! A bounded load test of `weft serve` on loopback: mixed add / search /
//! classify / delete from several clients for `WEFT_LOAD_SECS` seconds
//! (default 60), with a hostile client sending requests that are
//! well-formed but as large as the limits allow (a 10 MB text, 1,000 new
//! labels, a 25 Mpx image, a truncated image, broken JSON).
//!
//! Passes when: no well-formed request gets a 5xx or a transport error; the
//! p99 of small searches stays under 20x their unloaded p50; every
//! acknowledged add that was not deleted is there afterwards; the daemon's
//! peak RSS stays under `RSS_CEILING_MB` (README, "The daemon").

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

mod common;

use common::{call, png_of, post, Server, ROOT};

/// Peak resident memory allowed for the daemon under this load, in MB.
const RSS_CEILING_MB: u64 = 1500;

fn start(collections: &std::path::Path) -> Server {
    Server::start(
        collections,
        &[
            "--max-body-bytes",
            "33554432",
            "--max-text-bytes",
            "16777216",
            "--max-labels",
            "1000",
            "--timeout-s",
            "20",
        ],
    )
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn peak_rss_mb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// One client's loop body: (iteration, address, log).
type Client = Box<dyn Fn(usize, &str, &Mutex<Log>) + Send>;

#[derive(Default)]
struct Log {
    /// Well-formed requests that failed: (what, status, body).
    failures: Vec<(String, u16, String)>,
    acked: Vec<String>,
    deleted: Vec<String>,
    searches: Vec<Duration>,
    hostile: Vec<(String, u16)>,
    counts: std::collections::BTreeMap<&'static str, usize>,
}

#[test]
fn mixed_load_with_hostile_requests_within_limits() {
    let secs: u64 = std::env::var("WEFT_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dir = std::env::temp_dir().join(format!("weft-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let srv = start(&dir);
    let a = srv.addr.clone();
    let (s, v) = post(
        &a,
        "/collections",
        json!({"name": "load", "bundle": "tiny-vl"}),
    );
    assert!(s == 200 || s == 201, "{v}");
    // Seed items, then the unloaded p50 of a small search.
    let seed: Vec<Value> = (0..200)
        .map(|i| json!({"id": format!("seed-{i}"), "text": format!("a note about item {i}")}))
        .collect();
    let (s, v) = post(&a, "/collections/load/items", json!({ "items": seed }));
    assert_eq!(s, 200, "{v}");
    let search = json!({"text": "a note about cats", "k": 5});
    let mut unloaded = Vec::new();
    for _ in 0..60 {
        let t = Instant::now();
        assert_eq!(post(&a, "/collections/load/search", &search).0, 200);
        unloaded.push(t.elapsed());
    }
    let p50 = percentile(&mut unloaded, 0.5);

    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Log::default()));
    let mut threads = Vec::new();
    let spawn = |name: &'static str, f: Client| {
        let stop = Arc::clone(&stop);
        let log = Arc::clone(&log);
        let a = a.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                f(n, &a, &log);
                n += 1;
            }
            *log.lock().unwrap().counts.entry(name).or_default() += n;
        })
    };
    let fail = |log: &Mutex<Log>, what: String, r: &(u16, Value)| {
        let body: String = r.1.to_string().chars().take(300).collect();
        log.lock().unwrap().failures.push((what, r.0, body));
    };
    for adder in 0..2 {
        threads.push(spawn(
            "add",
            Box::new(move |n, a, log| {
                let ids: Vec<String> = (0..4).map(|k| format!("a{adder}-{n}-{k}")).collect();
                let items: Vec<Value> = ids
                    .iter()
                    .map(|id| json!({"id": id, "text": format!("text of {id}"), "payload": {"n": n}}))
                    .collect();
                let r = post(a, "/collections/load/items", json!({ "items": items }));
                if r.0 == 200 {
                    log.lock().unwrap().acked.extend(ids);
                } else {
                    fail(log, format!("add {n}"), &r);
                }
            }),
        ));
    }
    for _ in 0..2 {
        let search = search.clone();
        threads.push(spawn(
            "search",
            Box::new(move |n, a, log| {
                let t = Instant::now();
                let r = post(a, "/collections/load/search", &search);
                let took = t.elapsed();
                if r.0 == 200 {
                    log.lock().unwrap().searches.push(took);
                } else {
                    fail(log, format!("search {n}"), &r);
                }
            }),
        ));
    }
    threads.push(spawn(
        "classify",
        Box::new(move |n, a, log| {
            let labels: Vec<String> = (0..10).map(|k| format!("label {n} {k}")).collect();
            let r = post(a, "/classify", json!({"text": "a cat", "labels": labels}));
            if r.0 != 200 {
                fail(log, format!("classify {n}"), &r);
            }
        }),
    ));
    threads.push(spawn(
        "delete",
        Box::new(move |n, a, log| {
            let victim = {
                let l = log.lock().unwrap();
                l.acked.get(n * 7 % l.acked.len().max(1)).cloned()
            };
            match victim {
                Some(id) if !log.lock().unwrap().deleted.contains(&id) => {
                    let r = call(
                        a,
                        "DELETE",
                        &format!("/collections/load/items/{id}"),
                        None,
                        None,
                    );
                    if r.0 == 200 {
                        log.lock().unwrap().deleted.push(id);
                    } else {
                        fail(log, format!("delete {id}"), &r);
                    }
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
            std::thread::sleep(Duration::from_millis(50));
        }),
    ));
    let big_text = "word ".repeat(2 << 20); // 10 MB
    let bomb = base64::engine::general_purpose::STANDARD.encode(png_of(5000, 5000));
    let png = std::fs::read(format!("{ROOT}/tests/data/rgb_64x48.png")).unwrap();
    let cut = base64::engine::general_purpose::STANDARD.encode(&png[..png.len() - 30]);
    threads.push(spawn(
        "hostile",
        Box::new(move |n, a, log| {
            let (what, r) = match n % 5 {
                0 => (
                    "10 MB text",
                    post(a, "/embed", json!({"inputs": [{"text": big_text}]})),
                ),
                1 => {
                    let labels: Vec<String> = (0..1000)
                        .map(|k| format!("hostile label {n} {k}"))
                        .collect();
                    (
                        "1,000 labels",
                        post(a, "/classify", json!({"text": "x", "labels": labels})),
                    )
                }
                2 => (
                    "25 Mpx image",
                    post(a, "/embed", json!({"inputs": [{"image_base64": bomb}]})),
                ),
                3 => (
                    "truncated image",
                    post(a, "/embed", json!({"inputs": [{"image_base64": cut}]})),
                ),
                _ => (
                    "broken JSON",
                    call(
                        a,
                        "POST",
                        "/embed",
                        Some(b"{\"inputs\": [{\"text\": "),
                        None,
                    ),
                ),
            };
            log.lock().unwrap().hostile.push((what.to_string(), r.0));
        }),
    ));
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let pid = srv.child.id();
    let rss = peak_rss_mb(pid);
    let mut log = Arc::try_unwrap(log).ok().unwrap().into_inner().unwrap();

    // Every acknowledged add that was not deleted is there.
    let deleted: std::collections::HashSet<&String> = log.deleted.iter().collect();
    let mut missing = Vec::new();
    for id in log.acked.iter().filter(|id| !deleted.contains(id)) {
        let r = call(
            &a,
            "GET",
            &format!("/collections/load/items/{id}"),
            None,
            None,
        );
        if r.0 != 200 {
            missing.push(id.clone());
        }
    }
    let p99 = percentile(&mut log.searches, 0.99);
    let hostile_5xx: Vec<_> = log
        .hostile
        .iter()
        .filter(|(_, s)| *s >= 500 || *s == 0)
        .collect();
    eprintln!(
        "load {secs} s: {:?}; searches p50 unloaded {p50:?}, p99 loaded {p99:?}; acked {} adds, deleted {}; hostile statuses {:?}; peak RSS {rss} MB",
        log.counts,
        log.acked.len(),
        log.deleted.len(),
        log.hostile.iter().fold(std::collections::BTreeMap::new(), |mut m, (w, s)| {
            *m.entry(format!("{w}: {s}")).or_insert(0) += 1;
            m
        })
    );
    assert!(
        log.failures.is_empty(),
        "well-formed requests failed: {:?}",
        log.failures
    );
    assert!(
        hostile_5xx.is_empty(),
        "hostile requests got 5xx: {hostile_5xx:?}"
    );
    assert!(missing.is_empty(), "acknowledged adds missing: {missing:?}");
    assert!(
        p99 < p50 * 20,
        "search p99 under load {p99:?} is over 20x the unloaded p50 {p50:?}"
    );
    assert!(
        rss > 0 && rss < RSS_CEILING_MB,
        "peak RSS {rss} MB (ceiling {RSS_CEILING_MB} MB)"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
