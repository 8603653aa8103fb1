//! Dynamic batching: concurrent encode requests for one bundle are gathered
//! into one encoder call (up to `max_batch` items or `max_wait`), so
//! throughput under concurrency approaches the encoder's batch throughput.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use super::oneshot;
use super::Content;
use crate::encoder::{BundleEncoders, Encoded, Input};
use crate::error::{Error, Result};
use crate::modality::Modality;
use crate::runtime::ActiveProvider;

type Reply = oneshot::Sender<Vec<Result<Encoded>>>;

struct Job {
    inputs: Vec<Content>,
    reply: Reply,
}

/// A job being worked on: its next input and the results so far.
struct Active {
    inputs: Vec<Content>,
    /// `None` once answered.
    reply: Option<Reply>,
    /// Inputs handed to the encoder so far (in order).
    next: usize,
    /// Results by input position; a job is answered when all are in.
    results: Vec<Option<Result<Encoded>>>,
    missing: usize,
    /// Decoded pixels of each input, from the image header (0 for text).
    pixels: Vec<u64>,
}

/// Decoded pixels one encoder call takes from images (at least one image):
/// a call's latency is what a query arriving meanwhile waits for.
const PIXELS_PER_CALL: u64 = 16_000_000;

fn header_pixels(input: &Content) -> u64 {
    match input {
        Content::ImageBytes { bytes, .. } => {
            crate::encoder::image::header_info(bytes).map_or(0, |i| i.pixels())
        }
        Content::ImagePath(path) => {
            // The header is near the start (a JPEG's may follow its EXIF).
            use std::io::Read;
            let mut head = Vec::new();
            let read =
                std::fs::File::open(path).and_then(|f| f.take(HEADER_BYTES).read_to_end(&mut head));
            match read {
                Ok(_) => crate::encoder::image::header_info(&head).map_or(0, |i| i.pixels()),
                Err(_) => 0,
            }
        }
        _ => 0,
    }
}

/// Bytes of an image file read to find its size.
const HEADER_BYTES: u64 = 256 << 10;

/// Jobs waiting in a bundle's queue before new ones get 503.
pub const QUEUE_JOBS: usize = 1024;

/// Handle to one batching worker thread.
pub struct Lane {
    tx: SyncSender<Job>,
    providers: std::sync::Mutex<Vec<(Modality, ActiveProvider)>>,
}

/// A bundle's encoders behind two lanes, each a worker thread with its own
/// sessions: texts and SMILES in one, images in the other, so a query's
/// text never waits for an image being decoded and resized.
pub struct Batcher {
    cheap: std::sync::Arc<Lane>,
    images: std::sync::Arc<Lane>,
}

fn is_image(input: &Content) -> bool {
    input.modality() == Modality::Image
}

impl Batcher {
    /// Starts both lanes; `make` builds each lane's encoders (their sessions
    /// load on first use, so the text lane never loads the image model).
    pub fn start(
        mut make: impl FnMut() -> Result<BundleEncoders>,
        max_batch: usize,
        max_wait: Duration,
        stats: std::sync::Arc<BatchStats>,
    ) -> Result<Batcher> {
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
    pub fn providers(&self) -> Vec<(Modality, ActiveProvider)> {
        let mut all = Vec::new();
        for lane in [&self.cheap, &self.images] {
            if let Ok(p) = lane.providers.lock() {
                all.extend(p.iter().cloned());
            }
        }
        all
    }

    /// Queues `inputs`, each in its lane, to be batched with other
    /// concurrent requests. Never blocks: a full queue is [`Error::Busy`].
    /// Dropping the ticket (a timed-out request) cancels what is not yet
    /// encoded.
    pub fn submit(&self, inputs: Vec<Content>) -> Result<EncodeTicket> {
        let order: Vec<bool> = inputs.iter().map(is_image).collect();
        let (img, txt): (Vec<Content>, Vec<Content>) = inputs.into_iter().partition(is_image);
        let txt = (!txt.is_empty())
            .then(|| self.cheap.submit(txt))
            .transpose()?;
        let img = (!img.is_empty())
            .then(|| self.images.submit(img))
            .transpose()?;
        Ok(EncodeTicket {
            order,
            txt,
            img,
            got: [None, None],
        })
    }
}

/// Encoder results on their way: `.await` it (async callers) or
/// [`EncodeTicket::wait`]. One result per input, in the order given.
/// Dropping it cancels the inputs not yet encoded.
pub struct EncodeTicket {
    order: Vec<bool>,
    txt: Option<oneshot::Receiver<Vec<Result<Encoded>>>>,
    img: Option<oneshot::Receiver<Vec<Result<Encoded>>>>,
    got: [Option<Vec<Result<Encoded>>>; 2],
}

impl std::fmt::Debug for EncodeTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodeTicket")
            .field("inputs", &self.order.len())
            .finish()
    }
}

fn dropped(n: usize) -> Vec<Result<Encoded>> {
    (0..n)
        .map(|_| {
            Err(Error::InvalidConfig {
                name: "encoder".into(),
                reason: "the encoder worker stopped".into(),
            })
        })
        .collect()
}

impl EncodeTicket {
    fn count(&self, image: bool) -> usize {
        self.order.iter().filter(|&&i| i == image).count()
    }

    fn merge(&mut self) -> Vec<Result<Encoded>> {
        let n_txt = self.count(false);
        let n_img = self.count(true);
        let mut txt = self.got[0]
            .take()
            .unwrap_or_else(|| dropped(n_txt))
            .into_iter();
        let mut img = self.got[1]
            .take()
            .unwrap_or_else(|| dropped(n_img))
            .into_iter();
        self.order
            .iter()
            .map(|&image| {
                if image { img.next() } else { txt.next() }.unwrap_or_else(|| dropped(1).remove(0))
            })
            .collect()
    }

    /// Blocks until every input is encoded.
    pub fn wait(mut self) -> Vec<Result<Encoded>> {
        if let Some(rx) = self.txt.take() {
            self.got[0] = rx.wait();
        }
        if let Some(rx) = self.img.take() {
            self.got[1] = rx.wait();
        }
        self.merge()
    }
}

impl std::future::Future for EncodeTicket {
    type Output = Vec<Result<Encoded>>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        let this = &mut *self;
        for (slot, rx) in [(0, &mut this.txt), (1, &mut this.img)] {
            if let Some(r) = rx {
                match std::pin::Pin::new(r).poll(cx) {
                    Poll::Ready(v) => {
                        this.got[slot] = v;
                        *rx = None;
                    }
                    Poll::Pending => {}
                }
            }
        }
        if this.txt.is_none() && this.img.is_none() {
            Poll::Ready(this.merge())
        } else {
            Poll::Pending
        }
    }
}

/// Counters the worker updates.
#[derive(Default)]
pub struct BatchStats {
    /// Encoder calls made.
    pub batches: std::sync::atomic::AtomicU64,
    /// Items encoded.
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
        // Weak: the lane owns the queue's sender, so the worker ends (its
        // `recv` fails) once the batcher is dropped.
        let handle = std::sync::Arc::downgrade(&batcher);
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

    fn submit(&self, inputs: Vec<Content>) -> Result<oneshot::Receiver<Vec<Result<Encoded>>>> {
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Job { inputs, reply }) {
            Ok(()) => Ok(rx),
            Err(mpsc::TrySendError::Full(_)) => Err(Error::Busy {
                waiting: QUEUE_JOBS,
            }),
            // The receiver then sees the sender dropped: "worker stopped".
            Err(mpsc::TrySendError::Disconnected(job)) => {
                drop(job);
                Ok(rx)
            }
        }
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
    handle: &std::sync::Weak<Lane>,
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
                let is_image = is_image(&a.inputs[cursor[j]]);
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
            .partition(|&(j, i)| !is_image(&active[j].inputs[i]));
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
            if let Some(lane) = handle.upgrade() {
                if let Ok(mut p) = lane.providers.lock() {
                    *p = encoders.providers();
                }
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
                    reply.send(results);
                }
            }
        }
        active.retain(|a| a.reply.is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_paths_are_charged_by_their_header() {
        let png = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rgb_64x48.png");
        assert_eq!(header_pixels(&Content::ImagePath(png.clone())), 64 * 48);
        let bytes = std::fs::read(&png).unwrap();
        let inline = Content::ImageBytes {
            name: "x".into(),
            bytes,
        };
        assert_eq!(header_pixels(&inline), 64 * 48);
        assert_eq!(header_pixels(&Content::ImagePath("/no/such.png".into())), 0);
        assert_eq!(header_pixels(&Content::Text("a".into())), 0);
    }
}
