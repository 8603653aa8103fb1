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

/// A job being worked on: its next input and the results so far.
struct Active {
    inputs: Vec<OwnedInput>,
    /// `None` once answered.
    reply: Option<Reply>,
    /// Inputs handed to the encoder so far (in order).
    next: usize,
    /// Results by input position; a job is answered when all are in.
    results: Vec<Option<weft::Result<Encoded>>>,
    missing: usize,
    /// Decoded pixels of each input, from the image header (0 for text).
    pixels: Vec<u64>,
}

/// Decoded pixels one encoder call takes from images (at least one image):
/// a call's latency is what a query arriving meanwhile waits for.
const PIXELS_PER_CALL: u64 = 16_000_000;

fn header_pixels(input: &OwnedInput) -> u64 {
    match input {
        OwnedInput::Image { bytes, .. } => {
            weft::encoder::image::header_info(bytes).map_or(0, |i| i.pixels())
        }
        _ => 0,
    }
}

/// Jobs waiting in a bundle's queue before new ones get 503.
pub const QUEUE_JOBS: usize = 1024;

/// The queue is full: try again later (503 with Retry-After).
#[derive(Debug)]
pub struct Busy;

/// Handle to one batching worker thread.
pub struct Lane {
    tx: SyncSender<Job>,
    providers: std::sync::Mutex<Vec<(weft::bundle::Modality, ActiveProvider)>>,
}

/// A bundle's encoders behind two lanes, each a worker thread with its own
/// sessions: texts and SMILES in one, images in the other, so a query's
/// text never waits for an image being decoded and resized.
pub struct Batcher {
    cheap: std::sync::Arc<Lane>,
    images: std::sync::Arc<Lane>,
}

fn is_image(input: &OwnedInput) -> bool {
    matches!(input, OwnedInput::Image { .. })
}

impl Batcher {
    /// Starts both lanes; `make` builds each lane's encoders (their sessions
    /// load on first use, so the text lane never loads the image model).
    pub fn start(
        mut make: impl FnMut() -> weft::Result<BundleEncoders>,
        max_batch: usize,
        max_wait: Duration,
        stats: std::sync::Arc<BatchStats>,
    ) -> weft::Result<Batcher> {
        Ok(Batcher {
            cheap: Lane::start(
                make()?,
                "text",
                max_batch,
                max_wait,
                std::sync::Arc::clone(&stats),
            ),
            images: Lane::start(make()?, "image", max_batch, max_wait, stats),
        })
    }

    /// The execution providers the lanes' encoders run on.
    pub fn providers(&self) -> Vec<(weft::bundle::Modality, ActiveProvider)> {
        let mut all = Vec::new();
        for lane in [&self.cheap, &self.images] {
            if let Ok(p) = lane.providers.lock() {
                all.extend(p.iter().cloned());
            }
        }
        all
    }

    /// Encodes `inputs` (in order), each in its lane, batched with other
    /// concurrent requests. Never blocks: a full queue is [`Busy`].
    /// Dropping the future (a timed-out request) cancels what is not yet
    /// encoded.
    pub async fn encode(
        &self,
        inputs: Vec<OwnedInput>,
    ) -> Result<Vec<weft::Result<Encoded>>, Busy> {
        let images = inputs.iter().filter(|i| is_image(i)).count();
        if images == 0 {
            return self.cheap.encode(inputs).await;
        }
        if images == inputs.len() {
            return self.images.encode(inputs).await;
        }
        let order: Vec<bool> = inputs.iter().map(is_image).collect();
        let (img, txt): (Vec<OwnedInput>, Vec<OwnedInput>) = inputs.into_iter().partition(is_image);
        let (txt, img) = tokio::join!(self.cheap.encode(txt), self.images.encode(img));
        let (mut txt, mut img) = (txt?.into_iter(), img?.into_iter());
        Ok(order
            .into_iter()
            .map(|image| if image { img.next() } else { txt.next() }.expect("one result per input"))
            .collect())
    }
}

/// Counters the worker updates.
#[derive(Default)]
pub struct BatchStats {
    pub batches: std::sync::atomic::AtomicU64,
    pub items: std::sync::atomic::AtomicU64,
    /// Inputs never encoded because their request had gone (timed out or disconnected).
    pub cancelled: std::sync::atomic::AtomicU64,
}

impl Lane {
    /// Starts the worker; it owns the encoders.
    fn start(
        mut encoders: BundleEncoders,
        kind: &str,
        max_batch: usize,
        max_wait: Duration,
        stats: std::sync::Arc<BatchStats>,
    ) -> std::sync::Arc<Lane> {
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE_JOBS);
        let batcher = std::sync::Arc::new(Lane {
            tx,
            providers: std::sync::Mutex::new(Vec::new()),
        });
        let handle = std::sync::Arc::clone(&batcher);
        std::thread::Builder::new()
            .name(format!("weft-{kind}-{}", encoders.bundle().name()))
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

    async fn encode(&self, inputs: Vec<OwnedInput>) -> Result<Vec<weft::Result<Encoded>>, Busy> {
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
        match self.tx.try_send(Job { inputs, reply }) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(_)) => return Err(Busy),
            Err(mpsc::TrySendError::Disconnected(_)) => {
                return Ok(failed("the encoder worker stopped"))
            }
        }
        Ok(rx
            .await
            .unwrap_or_else(|_| failed("the encoder worker dropped the request")))
    }
}

/// The worker: gathers jobs for up to `max_wait`, then runs encoder calls of
/// at most `max_batch` inputs drawn round-robin from every waiting job, so a
/// request with many (or large) inputs shares each call with the small ones
/// that arrive meanwhile instead of holding the encoder until it is done.
/// Jobs whose requester has gone are dropped between calls.
fn worker(
    encoders: &mut BundleEncoders,
    rx: &Receiver<Job>,
    max_batch: usize,
    max_wait: Duration,
    stats: &BatchStats,
    handle: &Lane,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut active: std::collections::VecDeque<Active> = std::collections::VecDeque::new();
    let admit = |job: Job| Active {
        pixels: job.inputs.iter().map(header_pixels).collect(),
        results: (0..job.inputs.len()).map(|_| None).collect(),
        missing: job.inputs.len(),
        inputs: job.inputs,
        reply: Some(job.reply),
        next: 0,
    };
    loop {
        if active.is_empty() {
            let Ok(first) = rx.recv() else { return };
            active.push_back(admit(first));
            // Dynamic batching: wait a little for concurrent requests.
            let deadline = Instant::now() + max_wait;
            let mut count = active[0].inputs.len();
            while count < max_batch {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(job) => {
                        count += job.inputs.len();
                        active.push_back(admit(job));
                    }
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        }
        while let Ok(job) = rx.try_recv() {
            active.push_back(admit(job));
        }
        active.retain(|a| {
            let gone = a.reply.as_ref().is_none_or(|r| r.is_closed());
            if gone {
                stats
                    .cancelled
                    .fetch_add((a.inputs.len() - a.next) as u64, Relaxed);
            }
            !gone
        });
        if active.is_empty() {
            continue;
        }
        // Round-robin: one input from each job in turn, until the call has
        // `max_batch` inputs or its images reach PIXELS_PER_CALL (a job's
        // next input that is an image over the budget waits for a later call).
        let mut picks: Vec<(usize, usize)> = Vec::new();
        let mut cursor: Vec<usize> = active.iter().map(|a| a.next).collect();
        let mut blocked = vec![false; active.len()];
        let mut pixels = 0u64;
        let mut any_image = false;
        while picks.len() < max_batch {
            let before = picks.len();
            for (j, a) in active.iter().enumerate() {
                if picks.len() >= max_batch || blocked[j] || cursor[j] >= a.inputs.len() {
                    continue;
                }
                let px = a.pixels[cursor[j]];
                let is_image = matches!(a.inputs[cursor[j]], OwnedInput::Image { .. });
                if is_image && any_image && pixels.saturating_add(px) > PIXELS_PER_CALL {
                    blocked[j] = true;
                    continue;
                }
                if is_image {
                    any_image = true;
                    pixels = pixels.saturating_add(px);
                }
                picks.push((j, cursor[j]));
                cursor[j] += 1;
            }
            if picks.len() == before {
                break;
            }
        }
        for &(j, _) in &picks {
            active[j].next += 1;
        }
        // Texts and SMILES first, in their own call: a query's text is not
        // held up by the images (decode and resize) of another request.
        let (cheap, images): (Vec<_>, Vec<_>) = picks
            .into_iter()
            .partition(|&(j, i)| !matches!(active[j].inputs[i], OwnedInput::Image { .. }));
        for part in [cheap, images] {
            if part.is_empty() {
                continue;
            }
            let inputs: Vec<Input<'_>> = part
                .iter()
                .map(|&(j, i)| active[j].inputs[i].as_input())
                .collect();
            let results = encoders.encode(&inputs);
            drop(inputs);
            stats.batches.fetch_add(1, Relaxed);
            stats.items.fetch_add(part.len() as u64, Relaxed);
            if let Ok(mut p) = handle.providers.lock() {
                *p = encoders.providers();
            }
            for (&(j, i), r) in part.iter().zip(results) {
                active[j].results[i] = Some(r);
                active[j].missing -= 1;
            }
            // Answer every job that is complete now (kept in place, so the
            // positions in the next part stay valid).
            for a in active.iter_mut().filter(|a| a.missing == 0) {
                if let Some(reply) = a.reply.take() {
                    let results = std::mem::take(&mut a.results)
                        .into_iter()
                        .map(|r| r.expect("every result is in"))
                        .collect();
                    let _ = reply.send(results);
                }
            }
        }
        active.retain(|a| a.reply.is_some());
    }
}
