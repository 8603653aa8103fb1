//! Dynamic batching: concurrent encode requests for one bundle are gathered
//! into one encoder call (up to `max_batch` items or `max_wait`), so
//! throughput under concurrency approaches the encoder's batch throughput.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use weft::encoder::{BundleEncoders, Encoded, Input};
use weft::runtime::ActiveProvider;

/// An owned input (requests outlive the handler's borrow).
#[derive(Debug, Clone)]
pub enum OwnedInput {
    Text(String),
    Smiles(String),
    Image { name: String, bytes: Vec<u8> },
}

impl OwnedInput {
    fn as_input(&self) -> Input<'_> {
        match self {
            OwnedInput::Text(t) => Input::Text(t),
            OwnedInput::Smiles(s) => Input::Smiles(s),
            OwnedInput::Image { name, bytes } => Input::ImageBytes { name, bytes },
        }
    }
}

type Reply = tokio::sync::oneshot::Sender<Vec<weft::Result<Encoded>>>;

struct Job {
    inputs: Vec<OwnedInput>,
    reply: Reply,
}

/// Handle to a bundle's batching worker thread.
pub struct Batcher {
    tx: SyncSender<Job>,
    pub providers: std::sync::Mutex<Vec<(weft::bundle::Modality, ActiveProvider)>>,
}

/// Counters the worker updates.
#[derive(Default)]
pub struct BatchStats {
    pub batches: std::sync::atomic::AtomicU64,
    pub items: std::sync::atomic::AtomicU64,
}

impl Batcher {
    /// Starts the worker; it owns the encoders.
    pub fn start(
        mut encoders: BundleEncoders,
        max_batch: usize,
        max_wait: Duration,
        stats: std::sync::Arc<BatchStats>,
    ) -> std::sync::Arc<Batcher> {
        let (tx, rx) = mpsc::sync_channel::<Job>(1024);
        let batcher = std::sync::Arc::new(Batcher {
            tx,
            providers: std::sync::Mutex::new(Vec::new()),
        });
        let handle = std::sync::Arc::clone(&batcher);
        std::thread::Builder::new()
            .name(format!("weft-batcher-{}", encoders.bundle().name()))
            .spawn(move || {
                worker(
                    &mut encoders,
                    &rx,
                    max_batch.max(1),
                    max_wait,
                    &stats,
                    &handle,
                )
            })
            .expect("spawning the batcher thread");
        batcher
    }

    /// Encodes `inputs`, batched with other concurrent requests.
    pub async fn encode(&self, inputs: Vec<OwnedInput>) -> Vec<weft::Result<Encoded>> {
        let n = inputs.len();
        let (reply, rx) = tokio::sync::oneshot::channel();
        let failed = |why: &str| {
            (0..n)
                .map(|_| {
                    Err(weft::Error::InvalidConfig {
                        name: "encoder".into(),
                        reason: why.to_string(),
                    })
                })
                .collect()
        };
        if self.tx.send(Job { inputs, reply }).is_err() {
            return failed("the encoder worker stopped");
        }
        rx.await
            .unwrap_or_else(|_| failed("the encoder worker dropped the request"))
    }
}

fn worker(
    encoders: &mut BundleEncoders,
    rx: &Receiver<Job>,
    max_batch: usize,
    max_wait: Duration,
    stats: &BatchStats,
    handle: &Batcher,
) {
    use std::sync::atomic::Ordering::Relaxed;
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut count = jobs[0].inputs.len();
        let deadline = Instant::now() + max_wait;
        while count < max_batch {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(job) => {
                    count += job.inputs.len();
                    jobs.push(job);
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let all: Vec<Input<'_>> = jobs
            .iter()
            .flat_map(|j| j.inputs.iter().map(OwnedInput::as_input))
            .collect();
        let results = encoders.encode(&all);
        drop(all);
        let mut results = results.into_iter();
        stats.batches.fetch_add(1, Relaxed);
        stats.items.fetch_add(count as u64, Relaxed);
        if let Ok(mut p) = handle.providers.lock() {
            *p = encoders.providers();
        }
        for job in jobs {
            let mine: Vec<_> = results.by_ref().take(job.inputs.len()).collect();
            let _ = job.reply.send(mine);
        }
    }
}
