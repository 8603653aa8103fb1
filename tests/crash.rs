//! kill -9 at random moments during ingest (commits and checkpoints): after
//! reopening, every acknowledged item is present and intact, and no partial
//! batch is visible. Seeded; the seed is printed in every failure.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use weft::store::Collection;

const BATCH: usize = 7;

fn expected_vector(seed: u64, k: usize) -> Vec<f32> {
    let v: Vec<f32> = (0..8)
        .map(|j| ((seed as usize * 31 + k * 7 + j) % 13) as f32 + 1.0)
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

#[test]
fn a_writer_killed_at_random_points_loses_nothing_committed() {
    let seed: u64 = std::env::var("WEFT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261128);
    eprintln!("crash test seed {seed} (set WEFT_CRASH_SEED to replay)");
    let dir = std::env::temp_dir().join(format!("weft-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut rng = seed;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut acknowledged = 0usize;
    for round in 0..8 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
            .arg("__ingest-test")
            .arg(&dir)
            .args([
                "--seed",
                "5",
                "--batch",
                &BATCH.to_string(),
                "--batches",
                "100000",
                "--checkpoint-items",
                "40",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut last = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("committed ") {
                    last = n.parse::<usize>().ok();
                }
            }
            last
        });
        std::thread::sleep(Duration::from_millis(150 + next() % 600));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if let Some(n) = reader.join().unwrap() {
            acknowledged = acknowledged.max(n);
        }
        // Reopen as the writer (cleans up, truncates a torn tail) and check.
        let c = Collection::open_writer(&dir)
            .unwrap_or_else(|e| panic!("seed {seed} round {round}: reopen failed: {e}"));
        let snap = c.snapshot();
        let count = snap.len();
        assert!(
            count >= acknowledged,
            "seed {seed} round {round}: {count} items < {acknowledged} acknowledged"
        );
        assert_eq!(
            count % BATCH,
            0,
            "seed {seed} round {round}: partial batch visible ({count} items)"
        );
        c.verify()
            .unwrap_or_else(|e| panic!("seed {seed} round {round}: {e}"));
        for k in (0..count).step_by(5).chain([count.saturating_sub(1)]) {
            let doc = snap
                .doc_of(&format!("5-{k}"))
                .unwrap()
                .unwrap_or_else(|| panic!("seed {seed} round {round}: item 5-{k} missing"));
            let got = snap.embedding(doc).unwrap();
            for (a, b) in got.iter().zip(expected_vector(5, k)) {
                assert!(
                    (a - b).abs() < 1e-6,
                    "seed {seed} round {round}: item 5-{k} has wrong vector"
                );
            }
        }
        let stray: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(
            stray.is_empty(),
            "seed {seed} round {round}: temporary files left: {stray:?}"
        );
        acknowledged = count;
    }
    assert!(acknowledged > 0, "seed {seed}: nothing was ever committed");
    let _ = std::fs::remove_dir_all(&dir);
}
