//! The `weft` command-line tool.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use weft::runtime::RuntimeOptions;

/// Exit code for a usage error (bad flags), as clap uses.
const EXIT_USAGE: u8 = 2;
/// Exit code when the environment is broken (library missing, bundle broken).
const EXIT_UNHEALTHY: u8 = 3;

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "Embedded cross-modal retrieval engine"
)]
struct Cli {
    /// ONNX Runtime library file or folder (else WEFT_ORT_LIB, ORT_DYLIB_PATH, .weft/onnxruntime, beside the binary).
    #[arg(long, global = true, value_name = "PATH")]
    ort_lib: Option<PathBuf>,
    /// Extra folder with model bundles (repeatable; WEFT_MODELS and .weft/models are always searched).
    #[arg(long = "models-dir", global = true, value_name = "DIR")]
    models_dirs: Vec<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    /// Report the ONNX Runtime library, execution providers, CPU features and model bundles.
    Doctor {
        /// Also verify the sha256 of every bundle file.
        #[arg(long)]
        verify: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut runtime = RuntimeOptions::default();
    if let Some(path) = cli.ort_lib {
        runtime = runtime.with_ort_library(path);
    }
    let mut bundle_dirs = cli.models_dirs;
    bundle_dirs.extend(weft::bundle::default_dirs());
    match cli.command {
        Command::IngestTest {
            dir,
            seed,
            batch,
            batches,
            checkpoint_items,
        } => {
            ingest_test(&dir, seed, batch, batches, checkpoint_items)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor { verify, json } => {
            let report = weft::doctor::run(&runtime, &bundle_dirs, verify);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
            Ok(if report.healthy() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_UNHEALTHY)
            })
        }
    }
}

/// Deterministic test items: item `k` of seed `s` has id `s-k` and a vector derived from both.
fn ingest_test(
    dir: &std::path::Path,
    seed: u64,
    batch: usize,
    batches: usize,
    checkpoint_items: usize,
) -> anyhow::Result<()> {
    use std::io::Write;
    use weft::store::{Collection, CollectionConfig, NewItem};
    let collection = if dir.join("MANIFEST").exists() {
        Collection::open_writer(dir)?
    } else {
        Collection::create(
            dir,
            CollectionConfig::new("test", "test", 8).with_checkpoint_items(checkpoint_items),
        )?
    };
    let start = collection.snapshot().len();
    let mut out = std::io::stdout().lock();
    for b in 0..batches {
        for i in 0..batch {
            let k = start + b * batch + i;
            let v: Vec<f32> = (0..8)
                .map(|j| ((seed as usize * 31 + k * 7 + j) % 13) as f32 + 1.0)
                .collect();
            let tokens: Vec<f32> = v.iter().chain(v.iter()).copied().collect();
            collection.add(
                NewItem::new(format!("{seed}-{k}"), weft::bundle::Modality::Text, v)
                    .with_tokens(tokens, None)
                    .with_payload(serde_json::json!({ "k": k })),
            )?;
        }
        collection.commit()?;
        writeln!(out, "committed {}", start + (b + 1) * batch)?;
        out.flush()?;
    }
    Ok(())
}
