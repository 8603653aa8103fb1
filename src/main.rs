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
