//! Command definitions and their implementations.

mod args;
mod progress;
mod quantize;
#[cfg(feature = "server")]
mod serve;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
pub use args::Cli;
use args::*;
use weft::bundle::Modality;
use weft::classify::{ClassifyOptions, MultiLabel, TagOptions};
use weft::index::HnswParams;
use weft::runtime::Device;
use weft::search::{Filter, Scorer, SearchOptions};
use weft::store::{CollectionConfig, TokenDtype};
use weft::{Collection, Content, CreateOptions, Engine, EngineBuilder, SearchQuery};

/// Usage error (bad flags, bad option values).
pub const EXIT_USAGE: u8 = 2;
/// `doctor` found something broken.
pub const EXIT_UNHEALTHY: u8 = 3;
/// Bad input: a file, text, SMILES, id, collection or bundle.
pub const EXIT_INPUT: u8 = 4;

/// Maps an error to the exit code.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<weft::Error>().map(weft::Error::underlying) {
        Some(weft::Error::InvalidConfig { .. }) => EXIT_USAGE,
        Some(
            weft::Error::InvalidInput { .. }
            | weft::Error::NotFound { .. }
            | weft::Error::BundleNotFound { .. }
            | weft::Error::BundleMismatch { .. }
            | weft::Error::MissingEncoder { .. }
            | weft::Error::WrongDimension { .. }
            | weft::Error::DuplicateId { .. }
            | weft::Error::Import { .. }
            | weft::Error::Locked { .. },
        ) => EXIT_INPUT,
        Some(_) => 1,
        None if e.downcast_ref::<UsageError>().is_some() => EXIT_USAGE,
        None => 1,
    }
}

/// A usage mistake found after parsing (conflicting options, ...).
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// Where the command line looks for things, and the one [`Engine`] every
/// command goes through.
pub(crate) struct Env {
    global: Global,
    /// The nearest `.weft` folder of the current directory or a parent
    /// (the CLI's convenience; the library never walks up).
    project: Option<PathBuf>,
    pub(crate) engine: Engine,
}

/// The nearest `.weft` folder at or above the current directory that
/// holds `inside` (any `.weft` when `inside` is empty).
fn find_project_dir(inside: &str) -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .map(|d| d.join(".weft"))
        .find(|d| d.join(inside).is_dir())
}

/// The engine's settings from the flags and the project folders.
fn engine_builder(g: &Global) -> anyhow::Result<EngineBuilder> {
    let mut b = Engine::builder()
        .device(g.device.parse::<Device>()?)
        .allow_cpu_fallback(g.allow_cpu_fallback);
    if let Some(p) = &g.ort_lib {
        b = b.ort_library(p);
    }
    if let Some(p) = find_project_dir("onnxruntime") {
        b = b.ort_project_dir(p);
    }
    if let Some(t) = g.threads {
        b = b.threads(t);
    }
    for d in &g.models_dirs {
        b = b.models_dir_from(d, "--models-dir");
    }
    // Searched after --models-dir and WEFT_MODELS: the nearest
    // .weft/models at or above the current folder, else ./.weft/models.
    b = match find_project_dir("models") {
        Some(p) => {
            b.fallback_models_dir(p.join("models"), format!("project folder {}", p.display()))
        }
        None => {
            let cwd = std::env::current_dir().unwrap_or_default();
            b.fallback_models_dir(
                cwd.join(".weft").join("models"),
                "the current folder (no .weft/models above it)",
            )
        }
    };
    Ok(b)
}

impl Env {
    /// The engine with the daemon's batching, label and query cache settings.
    #[cfg(feature = "server")]
    fn engine_for_serve(
        &self,
        max_batch: usize,
        max_wait_ms: u64,
        label_cache_bytes: u64,
        query_cache_bytes: u64,
    ) -> anyhow::Result<Engine> {
        Ok(engine_builder(&self.global)?
            .batching(max_batch, std::time::Duration::from_millis(max_wait_ms))
            .label_cache_bytes(label_cache_bytes)
            .query_cache_bytes(query_cache_bytes)
            .build()?)
    }

    fn new(global: Global) -> anyhow::Result<Env> {
        let engine = engine_builder(&global)?.build()?;
        Ok(Env {
            global,
            project: find_project_dir(""),
            engine,
        })
    }

    fn collections_dir(&self) -> PathBuf {
        if let Some(d) = &self.global.collections_dir {
            return d.clone();
        }
        if let Some(d) = std::env::var_os("WEFT_COLLECTIONS") {
            return PathBuf::from(d);
        }
        self.project
            .clone()
            .unwrap_or_else(|| std::env::current_dir().unwrap_or_default().join(".weft"))
            .join("collections")
    }

    /// A collection given by folder (contains a `/` or exists) or by name.
    fn collection_path(&self, name: &str) -> PathBuf {
        let p = Path::new(name);
        if name.contains('/') || Engine::is_collection(p) {
            p.to_path_buf()
        } else {
            self.collections_dir().join(name)
        }
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let env = Env::new(cli.global)?;
    match cli.command {
        Command::Doctor { verify, json } => {
            let report = env.engine.doctor(verify);
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
        Command::Models { action } => models(&env, action),
        Command::Collections { action } => collections(&env, action),
        Command::Index(args) => index(&env, args),
        Command::Search(args) => search_cmd(&env, args),
        Command::Classify(args) => classify(&env, args),
        Command::Tag(args) => tag(&env, args),
        #[cfg(feature = "server")]
        Command::Serve(args) => {
            if args.timeout_s.is_nan() || args.timeout_s <= 0.0 {
                return Err(usage("--timeout-s must be > 0"));
            }
            let roots = args
                .roots
                .iter()
                .map(|r| {
                    r.canonicalize()
                        .with_context(|| format!("--root {}", r.display()))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let token = match &args.token_file {
                Some(f) => {
                    let text = std::fs::read_to_string(f)
                        .with_context(|| format!("--token-file {}", f.display()))?;
                    let t = text.lines().next().unwrap_or("").trim().to_string();
                    if t.is_empty() {
                        return Err(usage(format!(
                            "--token-file {}: the first line is empty",
                            f.display()
                        )));
                    }
                    Some(t)
                }
                None => args.token.clone().filter(|t| !t.is_empty()),
            };
            serve::run(
                serve::ServeConfig {
                    bind: args.bind,
                    token,
                    roots,
                    roots_as_given: args.roots.clone(),
                    collections_dir: env.collections_dir(),
                    max_body_bytes: args.max_body_bytes,
                    timeout: std::time::Duration::from_secs_f64(args.timeout_s),
                    default_bundle: args.bundle,
                    max_labels: args.max_labels,
                    max_text_bytes: args.max_text_bytes,
                    max_request_pixels: args.max_request_pixels,
                    max_request_decoded_bytes: args.max_request_decoded_mib << 20,
                },
                env.engine_for_serve(
                    args.max_batch,
                    args.max_wait_ms,
                    args.label_cache_mib << 20,
                    args.query_cache_mib << 20,
                )?,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::IngestTest {
            dir,
            seed,
            batch,
            batches,
            checkpoint_items,
        } => {
            ingest_test(&env, &dir, seed, batch, batches, checkpoint_items)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn models(env: &Env, action: ModelsAction) -> anyhow::Result<ExitCode> {
    match action {
        ModelsAction::List => {
            let found = env.engine.bundles(false);
            if found.is_empty() {
                println!(
                    "no bundles in {} (build them with models/build.sh)",
                    env.engine
                        .models_dirs()
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            for b in found {
                let status = if b.problems.is_empty() {
                    "ok".to_string()
                } else {
                    b.problems.join("; ")
                };
                println!(
                    "{}\t[{}]\t{}\t{}",
                    b.name.unwrap_or_default(),
                    b.modalities.join(", "),
                    b.path.display(),
                    status
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsAction::Verify { bundle } => {
            let b = env.engine.bundle(&bundle)?;
            let mut enc = env.engine.encoders(&b)?;
            enc.load_all()?;
            println!(
                "{} {} ({}): verified",
                b.name(),
                b.manifest().version,
                b.dir().display()
            );
            for (m, p) in enc.providers() {
                let tokens = if b.has_tokens(m) {
                    "tokens"
                } else {
                    "no tokens (late interaction unavailable)"
                };
                println!("  {m}: dim {}, {tokens}, runs on {p}", b.dim());
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsAction::Import(args) => import(env, args),
    }
}

/// Where `models import` writes: the first `--models-dir`, else the project-local `.weft/models`.
fn import_dir(env: &Env) -> PathBuf {
    env.global.models_dirs.first().cloned().unwrap_or_else(|| {
        std::env::current_dir()
            .unwrap_or_default()
            .join(".weft")
            .join("models")
    })
}

fn import(env: &Env, args: ImportArgs) -> anyhow::Result<ExitCode> {
    if let Some(q) = &args.quantize {
        if q != "int8" {
            return Err(usage(format!("--quantize {q}: only int8")));
        }
    }
    let templates = match &args.templates {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("--templates {}", f.display()))?;
            let t: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            if let Some((i, bad)) = t.iter().enumerate().find(|(_, l)| !l.contains("{}")) {
                return Err(usage(format!(
                    "{}:{}: template `{bad}` has no `{{}}` for the label",
                    f.display(),
                    i + 1
                )));
            }
            Some(t)
        }
        None => None,
    };
    let options = weft::import::ImportOptions::new(&args.name)
        .with_tokens(args.tokens == "auto")
        .with_logit_scale(args.logit_scale)
        .with_logit_bias(args.logit_bias)
        .with_templates(templates)
        .with_session(env.engine.session_options().clone());
    let runtime = env.engine.runtime()?;
    let dir = import_dir(env);
    let report = weft::import::import(&runtime, &args.src, &dir, &options)?;
    let quantized = match args.quantize {
        Some(_) => Some(quantize::run(
            env,
            &report,
            args.python.as_deref(),
            args.sample_images.as_deref(),
        )?),
        None => None,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"import": report, "quantize": quantized})
            )?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "imported {} ({} layout, {} scoring) into {}",
        report.name,
        report.layout.as_str(),
        match report.family {
            weft::import::Family::Clip => "softmax",
            weft::import::Family::Siglip => "sigmoid",
        },
        report.bundle.display()
    );
    for t in &report.tokens {
        match t.tokens {
            Some(n) => println!("  {} tokens: {n} per item ({})", t.modality, t.detail),
            None => println!("  {} tokens: none: {}", t.modality, t.detail),
        }
    }
    println!("  where each value came from:");
    for f in &report.facts {
        println!("    {} = {}  <- {}", f.field, f.value, f.source);
    }
    if let Some(q) = quantized {
        println!("{q}");
    }
    println!(
        "check it with: weft models verify {} && weft doctor",
        report.name
    );
    Ok(ExitCode::SUCCESS)
}

fn collections(env: &Env, action: CollectionsAction) -> anyhow::Result<ExitCode> {
    match action {
        CollectionsAction::List => {
            let dir = env.collections_dir();
            let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.path())
                        .filter(|p| Engine::is_collection(p))
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            if names.is_empty() {
                println!("no collections in {}", dir.display());
            }
            for p in names {
                match env.engine.open_read_only(&p) {
                    Ok(c) => {
                        let i = c.info();
                        println!(
                            "{}\t{} items\t{}\t{}",
                            p.file_name().unwrap_or_default().to_string_lossy(),
                            i.items,
                            i.config.bundle_name,
                            p.display()
                        );
                    }
                    Err(e) => println!("{}\tBROKEN: {e}", p.display()),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CollectionsAction::Info { collection } => {
            let c = env
                .engine
                .open_read_only(env.collection_path(&collection))?;
            println!("{}", serde_json::to_string_pretty(&c.info())?);
            Ok(ExitCode::SUCCESS)
        }
        CollectionsAction::Delete { collection } => {
            let path = env.collection_path(&collection);
            // Holding the writer lock proves no one else writes it.
            let c = env.engine.open(&path)?;
            drop(c);
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("deleting {}", path.display()))?;
            println!("deleted {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        CollectionsAction::Compact { collection } => {
            let c = env.engine.open(env.collection_path(&collection))?;
            let before = c.info();
            c.compact()?;
            let after = c.info();
            println!(
                "compacted {}: {} items, {} deleted reclaimed, {} -> {} bytes",
                c.dir().display(),
                after.items,
                before.deleted,
                before.disk_bytes,
                after.disk_bytes
            );
            Ok(ExitCode::SUCCESS)
        }
        CollectionsAction::Repair { collection } => {
            let r = env.engine.repair(env.collection_path(&collection))?;
            match &r.copy {
                Some(copy) => println!(
                    "repaired {}: cut {} bytes (the log as it was is kept in {}); {} items readable",
                    r.wal.display(),
                    r.bytes_cut,
                    copy.display(),
                    r.items
                ),
                None => println!(
                    "{}: the write-ahead log is intact, nothing to repair ({} items)",
                    r.wal.display(),
                    r.items
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        CollectionsAction::Verify { collection } => {
            let c = env
                .engine
                .open_read_only(env.collection_path(&collection))?;
            c.verify()?;
            println!(
                "{}: every checksum verified ({} items)",
                c.dir().display(),
                c.info().items
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn index(env: &Env, args: IndexArgs) -> anyhow::Result<ExitCode> {
    let path = env.collection_path(&args.collection);
    let collection = if Engine::is_collection(&path) {
        env.engine.open(&path)?
    } else {
        let options = CreateOptions {
            token_dtype: Some(args.dtype.parse::<TokenDtype>()?),
            hnsw: Some(
                HnswParams::default()
                    .with_m(args.m)
                    .with_ef_construction(args.ef_construction),
            ),
            ..Default::default()
        };
        env.engine.create(&path, &args.bundle, &options)?
    };
    let mut bar = progress::Progress::new("indexing");
    let report = collection.index_with_batch(&args.inputs, args.batch, |p| {
        bar.update(p.files_done, p.files_total, p.items)
    })?;
    bar.finish();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{}: {} files seen, {} unchanged, {} indexed, {} items added, {} removed, {} errors; {} items in the collection",
            collection.dir().display(),
            report.files_seen,
            report.files_unchanged,
            report.files_indexed,
            report.items_added,
            report.items_removed,
            report.errors.len(),
            collection.snapshot().len()
        );
        for e in &report.errors {
            eprintln!("  error: {e}");
        }
        for s in &report.skipped {
            eprintln!("  note: {s}");
        }
    }
    if report.errors.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        // What succeeded is committed; the exit code says that not all did.
        eprintln!(
            "weft index: {} input(s) failed; the rest is indexed",
            report.errors.len()
        );
        Ok(ExitCode::from(EXIT_INPUT))
    }
}

fn search_cmd(env: &Env, args: SearchArgs) -> anyhow::Result<ExitCode> {
    let given = [
        args.text.is_some(),
        args.image.is_some(),
        args.smiles.is_some(),
        args.id.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(usage(
            "give exactly one query: TEXT, --image PATH, --smiles S or --id ID",
        ));
    }
    let scorer: Scorer = args.scorer.parse()?;
    let filter = args.filter.as_deref().map(Filter::parse).transpose()?;
    let collection = env
        .engine
        .open_read_only(env.collection_path(&args.collection))?;
    if let Some(ef) = args.ef {
        if ef == 0 {
            return Err(usage("--ef must be at least 1"));
        }
    }
    let query = if let Some(id) = &args.id {
        SearchQuery::Id(id.clone())
    } else if let Some(t) = &args.text {
        SearchQuery::Content(Content::Text(t.clone()))
    } else if let Some(p) = &args.image {
        SearchQuery::Content(Content::ImagePath(p.clone()))
    } else {
        SearchQuery::Content(Content::Smiles(args.smiles.clone().unwrap_or_default()))
    };
    let opts = SearchOptions::default()
        .with_k(args.k)
        .with_scorer(scorer)
        .with_filter(filter)
        .with_explain(args.explain)
        .with_ef(args.ef);
    let hits = collection.search(query, &opts)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&hits)?)?;
    } else {
        if hits.is_empty() {
            writeln!(out, "no results")?;
        }
        let cwd = std::env::current_dir().unwrap_or_default();
        let short = |s: &str| -> String {
            Path::new(s)
                .strip_prefix(&cwd)
                .map_or_else(|_| s.to_string(), |p| p.display().to_string())
        };
        for (rank, h) in hits.iter().enumerate() {
            let mut line = format!("{:>3}. {:.4}  {}", rank + 1, h.score, short(&h.id));
            for key in ["name", "smiles", "text"] {
                if let Some(v) = h.payload.get(key).and_then(|v| v.as_str()) {
                    line.push_str(&format!("  {v}"));
                }
            }
            if !h.source.is_empty() && h.source != h.id && !h.id.starts_with(&h.source) {
                line.push_str(&format!("  ({})", short(&h.source)));
            }
            writeln!(out, "{line}")?;
            if let Some(ex) = &h.explanation {
                for m in ex {
                    let patch = m
                        .patch
                        .map(|[r, c]| format!(" (patch row {r}, col {c})"))
                        .unwrap_or_default();
                    writeln!(
                        out,
                        "       query token {} -> item token {}{patch}: {:.3}",
                        m.query_token, m.item_token, m.similarity
                    )?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_labels(labels: &[String], file: Option<&Path>) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = labels
        .iter()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading labels from {}", f.display()))?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    if out.is_empty() {
        return Err(usage(
            "give labels with --labels a,b,c or --labels-file FILE",
        ));
    }
    Ok(out)
}

fn classify(env: &Env, args: ClassifyArgs) -> anyhow::Result<ExitCode> {
    let given = [
        args.path.is_some(),
        args.text.is_some(),
        args.smiles.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(usage(
            "give exactly one input: an image PATH, --text T or --smiles S",
        ));
    }
    let labels = read_labels(&args.labels, args.labels_file.as_deref())?;
    let bundle = env.engine.bundle(&args.bundle)?;
    let mut opts = ClassifyOptions::default()
        .with_top_k(args.top_k)
        .with_abstain_below(args.abstain);
    if !args.templates.is_empty() {
        opts = opts.with_templates(args.templates.clone());
    }
    if let Some(t) = args.multi_label {
        opts = opts.with_multi_label(Some(MultiLabel {
            default_threshold: t,
            ..Default::default()
        }));
    }
    let input = match (&args.path, &args.text, &args.smiles) {
        (Some(p), _, _) => Content::ImagePath(p.clone()),
        (_, Some(t), _) => Content::Text(t.clone()),
        (_, _, Some(s)) => Content::Smiles(s.clone()),
        _ => unreachable!("checked above"),
    };
    let result = env.engine.classify(&bundle, input, &labels, &opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        match &result.best {
            Some(b) => println!("{b}"),
            None => println!("none of these"),
        }
        for l in &result.labels {
            println!(
                "  {:>6.2}%  {:.4}  {}",
                l.probability * 100.0,
                l.score,
                l.label
            );
        }
        if let Some(on) = &result.on {
            println!("labels over the threshold: {}", on.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn tag(env: &Env, args: TagArgs) -> anyhow::Result<ExitCode> {
    let labels = read_labels(&args.labels, args.labels_file.as_deref())?;
    let collection = env.engine.open(env.collection_path(&args.collection))?;
    let mut opts = ClassifyOptions::default().with_top_k(args.top_k);
    if let Some(t) = args.multi_label {
        opts = opts.with_multi_label(Some(MultiLabel {
            default_threshold: t,
            ..Default::default()
        }));
    }
    let tag_opts = TagOptions::default()
        .with_classify(opts)
        .with_write(!args.dry_run);
    let mut bar = progress::Progress::new("tagging");
    let dry = args.dry_run;
    let report = collection.tag(&labels, &tag_opts, |id, c, done, total| {
        if dry {
            if let Some(c) = c {
                let labels: Vec<&str> = c.labels.iter().map(|l| l.label.as_str()).collect();
                println!("{id}\t{}", labels.join(", "));
            }
        }
        bar.update(done, total, done);
    })?;
    bar.finish();
    println!(
        "tagged {} items, {} already tagged by this run (skipped), {} in total",
        report.tagged, report.skipped, report.total
    );
    Ok(ExitCode::SUCCESS)
}

/// Deterministic test items: item `k` of seed `s` has id `s-k` and a vector derived from both.
fn ingest_test(
    env: &Env,
    dir: &Path,
    seed: u64,
    batch: usize,
    batches: usize,
    checkpoint_items: usize,
) -> anyhow::Result<()> {
    use weft::store::NewItem;
    if batch == 0 {
        bail!(usage("--batch must be at least 1"));
    }
    let collection: Collection = if Engine::is_collection(dir) {
        env.engine.open(dir)?
    } else {
        env.engine.create_with_config(
            dir,
            CollectionConfig::new("test", "test", 8).with_checkpoint_items(checkpoint_items),
        )?
    };
    let start = collection.snapshot().len();
    let mut out = std::io::stdout().lock();
    for b in 0..batches {
        let mut staged = collection.batch();
        for i in 0..batch {
            let k = start + b * batch + i;
            let v: Vec<f32> = (0..8)
                .map(|j| ((seed as usize * 31 + k * 7 + j) % 13) as f32 + 1.0)
                .collect();
            let tokens: Vec<f32> = v.iter().chain(v.iter()).copied().collect();
            staged.add_item(
                NewItem::new(format!("{seed}-{k}"), Modality::Text, v)
                    .with_tokens(tokens, None)
                    .with_payload(serde_json::json!({ "k": k })),
            )?;
        }
        staged.commit()?;
        writeln!(out, "committed {}", start + (b + 1) * batch)?;
        out.flush()?;
    }
    Ok(())
}
