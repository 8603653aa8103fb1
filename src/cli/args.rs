//! The command line's arguments (clap derive): the global flags and every
//! command's options. `mod.rs` runs them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "Embedded cross-modal retrieval engine"
)]
pub struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Args, Clone)]
pub(crate) struct Global {
    /// ONNX Runtime library file or folder (else WEFT_ORT_LIB, ORT_DYLIB_PATH, .weft/onnxruntime, beside the binary).
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) ort_lib: Option<PathBuf>,
    /// Extra folder with model bundles (repeatable; WEFT_MODELS and .weft/models are always searched).
    #[arg(long = "models-dir", global = true, value_name = "DIR")]
    pub(crate) models_dirs: Vec<PathBuf>,
    /// Execution provider: cpu, cuda, cuda:N or auto.
    #[arg(long, global = true, default_value = "cpu")]
    pub(crate) device: String,
    /// With a CUDA device: run on the CPU (reported) when CUDA cannot run.
    #[arg(long, global = true)]
    pub(crate) allow_cpu_fallback: bool,
    /// ONNX Runtime intra-op threads (default: cores, at most 8).
    #[arg(long, global = true)]
    pub(crate) threads: Option<usize>,
    /// Folder of named collections (default: WEFT_COLLECTIONS or .weft/collections).
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) collections_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Report the ONNX Runtime library, execution providers, CPU features and model bundles.
    Doctor {
        /// Also verify the sha256 of every bundle file.
        #[arg(long)]
        verify: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Model bundles: list, verify.
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// Collections: list, info, delete, compact, verify, repair.
    Collections {
        #[command(subcommand)]
        action: CollectionsAction,
    },
    /// Index images, text files, JSONL and molecule files (incremental).
    Index(IndexArgs),
    /// Search a collection by text, image, SMILES or stored item.
    Search(SearchArgs),
    /// Zero-shot classify an image, a text or a SMILES.
    Classify(ClassifyArgs),
    /// Tag every item of a collection with zero-shot labels.
    Tag(TagArgs),
    /// Run the HTTP JSON daemon.
    #[cfg(feature = "server")]
    Serve(ServeArgs),
    /// Test helper: ingests seeded items in committed batches, printing
    /// `committed N` after each commit returns (used by the crash tests).
    #[command(name = "__ingest-test", hide = true)]
    IngestTest {
        /// Collection folder (created if missing).
        dir: PathBuf,
        /// Seed of the generated items.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Items per commit.
        #[arg(long, default_value_t = 10)]
        batch: usize,
        /// Commits to make.
        #[arg(long, default_value_t = 1000)]
        batches: usize,
        /// Checkpoint threshold of a new collection.
        #[arg(long, default_value_t = 64)]
        checkpoint_items: usize,
    },
}

#[cfg(feature = "server")]
#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on; a non-loopback address needs --token.
    #[arg(long, default_value = "127.0.0.1:7700")]
    pub(crate) bind: std::net::SocketAddr,
    /// Bearer token required on every endpoint but /health (or WEFT_TOKEN).
    /// A flag's value is visible in `ps`: prefer WEFT_TOKEN or --token-file.
    #[arg(long, env = "WEFT_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// File whose first line is the bearer token (instead of --token).
    #[arg(long, conflicts_with = "token")]
    pub(crate) token_file: Option<PathBuf>,
    /// Folder whose files may be given by server-side path (repeatable).
    #[arg(long = "root")]
    pub(crate) roots: Vec<PathBuf>,
    /// Bundle used when a request names none.
    #[arg(long, default_value = "starter-vl")]
    pub(crate) bundle: String,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 32 << 20)]
    pub(crate) max_body_bytes: usize,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub(crate) timeout_s: f64,
    /// Dynamic batching: most items per encoder call.
    #[arg(long, default_value_t = 32)]
    pub(crate) max_batch: usize,
    /// Dynamic batching: longest wait for more requests, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub(crate) max_wait_ms: u64,
    /// Most labels in one /classify request.
    #[arg(long, default_value_t = 1024)]
    pub(crate) max_labels: usize,
    /// Longest text (or SMILES) in one input, in bytes, checked before tokenizing.
    #[arg(long, default_value_t = 1 << 20)]
    pub(crate) max_text_bytes: usize,
    /// Most decoded pixels of all images in one request (width x height summed).
    #[arg(long, default_value_t = 100_000_000)]
    pub(crate) max_request_pixels: u64,
    /// Most decoded bytes of all images in one request, in MiB: pixels x
    /// channels x bytes per channel, as the decoders hold them (16-bit RGBA
    /// takes 8 bytes a pixel, RGB8 3).
    #[arg(long, default_value_t = 1024)]
    pub(crate) max_request_decoded_mib: u64,
    /// Memory for cached label embeddings of /classify, in MiB (least recently used dropped first).
    #[arg(long, default_value_t = 64)]
    pub(crate) label_cache_mib: u64,
    /// Memory for the embeddings of recent query texts and SMILES, in MiB (0: off).
    #[arg(long, default_value_t = 16)]
    pub(crate) query_cache_mib: u64,
}

#[derive(Subcommand)]
pub(crate) enum ModelsAction {
    /// List the bundles found.
    List,
    /// Verify a bundle (sha256 of every file) and load its encoders.
    Verify {
        /// Bundle name or folder.
        bundle: String,
    },
    /// Import a CLIP-family ONNX export (Hugging Face, open_clip, Immich) as a bundle.
    Import(ImportArgs),
}

#[derive(Args)]
pub(crate) struct ImportArgs {
    /// The export folder.
    pub(crate) src: PathBuf,
    /// Name of the new bundle (a folder under the models folder).
    #[arg(long)]
    pub(crate) name: String,
    /// Token outputs for late interaction: `auto` adds them where the graph allows, `none` skips them.
    #[arg(long, default_value = "auto", value_parser = ["auto", "none"])]
    pub(crate) tokens: String,
    /// Write int8 weights (dynamic quantization of MatMul weights, by
    /// ONNX Runtime's Python quantizer) and report the measured speed and
    /// cosine against fp32.
    #[arg(long, value_parser = ["int8"])]
    pub(crate) quantize: Option<String>,
    /// With --quantize: the Python that has onnxruntime (default: WEFT_PYTHON, .weft/venv/bin/python, python3).
    #[arg(long, value_name = "PATH")]
    pub(crate) python: Option<PathBuf>,
    /// With --quantize: photos to measure on (default: .weft/data/photos, else synthetic images).
    #[arg(long, value_name = "DIR")]
    pub(crate) sample_images: Option<PathBuf>,
    /// The logit scale (the multiplier exp(t)) when the export does not carry one.
    #[arg(long)]
    pub(crate) logit_scale: Option<f32>,
    /// SigLIP's logit bias when the export does not carry one.
    #[arg(long)]
    pub(crate) logit_bias: Option<f32>,
    /// Prompt templates, one per line with `{}` for the label (default: the export's, else OpenAI's 80).
    #[arg(long, value_name = "FILE")]
    pub(crate) templates: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Subcommand)]
pub(crate) enum CollectionsAction {
    /// List the collections in the collections folder.
    List,
    /// Show a collection's settings and sizes.
    Info {
        /// Collection name or folder.
        collection: String,
    },
    /// Delete a collection (its folder).
    Delete {
        /// Collection name or folder.
        collection: String,
    },
    /// Reclaim the space of deleted items and rebuild the index.
    Compact {
        /// Collection name or folder.
        collection: String,
    },
    /// Read every file and check every checksum.
    Verify {
        /// Collection name or folder.
        collection: String,
    },
    /// Cut a damaged write-ahead log at the last commit before the damage,
    /// keeping a copy of it beside the log (`verify` names the damage).
    Repair {
        /// Collection name or folder.
        collection: String,
    },
}

#[derive(Args)]
pub(crate) struct IndexArgs {
    /// Files, folders (recursive) or globs (`photos/*.jpg`, `photos/**/*.png`).
    #[arg(required = true)]
    pub(crate) inputs: Vec<String>,
    /// Collection name or folder (created on first use).
    #[arg(long, short)]
    pub(crate) collection: String,
    /// Bundle of a new collection (name or folder).
    #[arg(long, default_value = "starter-vl")]
    pub(crate) bundle: String,
    /// Token dtype of a new collection: f32, f16, bf16, i8.
    #[arg(long, default_value = "f16")]
    pub(crate) dtype: String,
    /// HNSW M of a new collection.
    #[arg(long, default_value_t = 16)]
    pub(crate) m: usize,
    /// HNSW ef_construction of a new collection.
    #[arg(long, default_value_t = 200)]
    pub(crate) ef_construction: usize,
    /// Items encoded per batch (and per commit).
    #[arg(long, default_value_t = 32)]
    pub(crate) batch: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args)]
pub(crate) struct SearchArgs {
    /// Query text.
    pub(crate) text: Option<String>,
    /// Query image.
    #[arg(long)]
    pub(crate) image: Option<PathBuf>,
    /// Query SMILES.
    #[arg(long)]
    pub(crate) smiles: Option<String>,
    /// Query by a stored item's id ("more like this").
    #[arg(long)]
    pub(crate) id: Option<String>,
    /// Collection name or folder.
    #[arg(long, short)]
    pub(crate) collection: String,
    /// Results (at least 1).
    #[arg(long, short, default_value_t = 10, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub(crate) k: usize,
    /// global, filip, filip-reverse, filip-symmetric, maxsim, hybrid[:w], motif (OT), multi[:g,t,m].
    #[arg(long, default_value = "global")]
    pub(crate) scorer: String,
    /// Payload filter as JSON, e.g. '{"year": {"gte": 2020}}'.
    #[arg(long)]
    pub(crate) filter: Option<String>,
    /// Show, per query token, the best item token (and patch).
    #[arg(long)]
    pub(crate) explain: bool,
    /// HNSW ef for this query.
    #[arg(long)]
    pub(crate) ef: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args)]
pub(crate) struct ClassifyArgs {
    /// Image file to classify (or use --text / --smiles).
    pub(crate) path: Option<PathBuf>,
    /// Text to classify.
    #[arg(long)]
    pub(crate) text: Option<String>,
    /// SMILES to classify.
    #[arg(long)]
    pub(crate) smiles: Option<String>,
    /// Labels, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub(crate) labels: Vec<String>,
    /// File with one label per line.
    #[arg(long)]
    pub(crate) labels_file: Option<PathBuf>,
    /// Bundle name or folder.
    #[arg(long, default_value = "starter-vl")]
    pub(crate) bundle: String,
    /// Labels shown (at least 1).
    #[arg(long, default_value_t = 5, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub(crate) top_k: usize,
    /// Answer "none of these" below this probability.
    #[arg(long)]
    pub(crate) abstain: Option<f32>,
    /// Multi-label mode: labels whose cosine score reaches this threshold.
    #[arg(long)]
    pub(crate) multi_label: Option<f32>,
    /// Template (repeatable) with {} for the label; default: the bundle's.
    #[arg(long = "template")]
    pub(crate) templates: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args)]
pub(crate) struct TagArgs {
    /// Collection name or folder.
    #[arg(long, short)]
    pub(crate) collection: String,
    /// File with one label per line.
    #[arg(long)]
    pub(crate) labels_file: Option<PathBuf>,
    /// Labels, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub(crate) labels: Vec<String>,
    /// Labels written per item.
    #[arg(long, default_value_t = 3)]
    pub(crate) top_k: usize,
    /// Multi-label mode: labels whose cosine score reaches this threshold.
    #[arg(long)]
    pub(crate) multi_label: Option<f32>,
    /// Only print the labels; do not write them into the payloads.
    #[arg(long)]
    pub(crate) dry_run: bool,
}
