//! weft's side of `scripts/bench.sh`: each subcommand prints one JSON line
//! with the same schema as the Python baselines in `bench/` (`"impl": "weft"`).
//!
//! ```text
//! bench maxsim  --docs 1000 --nd 64 --nq 32 --dim 128 --dtype f32|f16|bf16|i8 --runs 25
//! bench ann     --data F --queries F --truth F --dim D --k 10 --m 16 --ef-construction 200 --ef 16,32,64 [--threads T]
//! bench encode  --bundle DIR --images DIR --threads N --repeat R [--device cpu|cuda|cuda:N]
//! bench storage --items N --dim D --tokens T
//! bench e2e     --items N --dim D --tokens T --rerank R --queries Q --bundle DIR [--dtype f16|i8|f32] (default f16) [--threads T] [--device D]
//! bench scale   --items 1000000 --dim 384 --tokens 50 --dtype i8 --dir DIR [--keep 1] [--queries 100] [--open-only 1]
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;
use weft::bundle::{Bundle, Modality};
use weft::encoder::{BundleEncoders, EncoderOptions, Input};
use weft::index::{HnswIndex, HnswParams, VectorIndex};
use weft::runtime::{Device, Runtime, RuntimeOptions, SessionOptions};
use weft::score::{Kernel, MaxSimScratch, TokensRef};
use weft::search::{search, Candidates, Direction, Query, Scorer, SearchOptions, SearchScratch};
use weft::store::{Collection, CollectionConfig, NewItem, TokenDtype};

type Args = HashMap<String, String>;

fn args() -> (String, Args) {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let cmd = raw.first().cloned().unwrap_or_default();
    let mut map = HashMap::new();
    let mut i = 1;
    while i < raw.len() {
        if let Some(k) = raw[i].strip_prefix("--") {
            let v = raw.get(i + 1).cloned().unwrap_or_default();
            map.insert(k.to_string(), v);
            i += 2;
        } else {
            i += 1;
        }
    }
    (cmd, map)
}

fn get<T: std::str::FromStr>(a: &Args, k: &str, default: T) -> T {
    a.get(k).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn need(a: &Args, k: &str) -> anyhow::Result<String> {
    a.get(k)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("--{k} is required"))
}

struct Rng(u64);
impl Rng {
    fn f(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn unit(&mut self, dim: usize, around: Option<&[f32]>, noise: f32) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dim)
            .map(|i| around.map_or(0.0, |c| c[i]) + noise * self.f())
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter_mut().for_each(|x| *x /= n);
        v
    }
}

fn stats(mut ms: Vec<f64>) -> (f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[0], ms[ms.len() - 1])
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(String::from)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn read_f32(path: &str) -> anyhow::Result<Vec<f32>> {
    let b = std::fs::read(path)?;
    Ok(b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
        .collect())
}

fn maxsim(a: &Args) -> anyhow::Result<()> {
    let (docs, nd, nq, dim, runs) = (
        get(a, "docs", 1000),
        get(a, "nd", 64),
        get(a, "nq", 32),
        get(a, "dim", 128),
        get(a, "runs", 25usize),
    );
    let dtype: TokenDtype = a.get("dtype").map_or(Ok(TokenDtype::F32), |s| s.parse())?;
    let mut rng = Rng(7);
    let query: Vec<f32> = (0..nq).flat_map(|_| rng.unit(dim, None, 1.0)).collect();
    let blocks: Vec<Vec<u32>> = (0..docs)
        .map(|_| {
            let t: Vec<f32> = (0..nd).flat_map(|_| rng.unit(dim, None, 1.0)).collect();
            let bytes = dtype.encode(&t, dim);
            let mut w = vec![0u32; bytes.len() / 4];
            bytemuck::cast_slice_mut::<u32, u8>(&mut w).copy_from_slice(&bytes);
            w
        })
        .collect();
    let views: Vec<TokensRef<'_>> = blocks
        .iter()
        .map(|b| dtype.view(bytemuck::cast_slice(b), nd, dim).expect("block"))
        .collect();
    let mut scratch = MaxSimScratch::new();
    let mut sink = 0.0f32;
    let mut ms = Vec::new();
    for r in 0..runs + 3 {
        let t = Instant::now();
        let mut prepared = scratch.prepare(&query, nq, dim);
        for (i, v) in views.iter().enumerate() {
            let next = views.get(i + 1).copied().unwrap_or(TokensRef::F32(&[]));
            sink += prepared.interact_then(*v, next).maxsim();
        }
        if r >= 3 {
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let (med, min, max) = stats(ms);
    let flops = 2.0 * (nq * nd * dim * docs) as f64;
    println!(
        "{}",
        json!({"name": "maxsim", "impl": "weft", "dtype": format!("{dtype:?}").to_lowercase(), "kernel": Kernel::detect().name(),
               "ms_median": med, "ms_min": min, "ms_max": max, "gflops": flops / med / 1e6,
               "docs": docs, "nd": nd, "nq": nq, "dim": dim, "runs": runs, "threads": 1, "checksum": sink})
    );
    Ok(())
}

fn ann(a: &Args) -> anyhow::Result<()> {
    let dim: usize = get(a, "dim", 384);
    let k: usize = get(a, "k", 10);
    let data_path = need(a, "data")?;
    let data = read_f32(&data_path)?;
    let queries = read_f32(&need(a, "queries")?)?;
    let truth_bytes = std::fs::read(need(a, "truth")?)?;
    let truth: Vec<i32> = truth_bytes
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().expect("4")))
        .collect();
    let n = data.len() / dim;
    let nq = queries.len() / dim;
    let tk = truth.len() / nq.max(1);
    let params = HnswParams::default()
        .with_m(get(a, "m", 16))
        .with_ef_construction(get(a, "ef-construction", 200));
    let t = Instant::now();
    let mut index = HnswIndex::new(params, n)?;
    let rows: Vec<(&[f32], u64)> = data
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, v)| (v, i as u64))
        .collect();
    index.insert_many(&rows)?;
    let build_s = t.elapsed().as_secs_f64();
    let efs: Vec<usize> = a.get("ef").map_or(vec![64], |s| {
        s.split(',').filter_map(|e| e.parse().ok()).collect()
    });
    let dataset = Path::new(&data_path)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    // `--walk i8` (default, the engine's walk over i8 codes) and/or `f32`:
    // one JSON line per walk over the same built index.
    let walks: Vec<String> = a
        .get("walk")
        .map_or("i8", String::as_str)
        .split(',')
        .map(String::from)
        .collect();
    for walk in walks {
        let name = match walk.as_str() {
            "i8" => "weft",
            "f32" => "weft-f32-walk",
            w => anyhow::bail!("--walk {w}: expected i8 or f32"),
        };
        index.set_quantized_walk(walk == "i8");
        let mut results = Vec::new();
        for &ef in &efs {
            index.set_ef_search(ef);
            let idx = &index;
            let mut lat = Vec::with_capacity(nq);
            let mut hits = 0usize;
            let start = Instant::now();
            for (qi, q) in queries.chunks_exact(dim).enumerate() {
                let t = Instant::now();
                let got = idx.search(q, k, None)?;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                let want = &truth[qi * tk..qi * tk + k.min(tk)];
                hits += got
                    .iter()
                    .filter(|(d, _)| want.contains(&(*d as i32)))
                    .count();
            }
            let total = start.elapsed().as_secs_f64();
            lat.sort_by(f64::total_cmp);
            results.push(
                json!({"ef": ef, "recall": hits as f64 / (k * nq) as f64, "qps": nq as f64 / total,
                            "p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99)}),
            );
        }
        println!(
            "{}",
            json!({"name": "ann", "impl": name, "walk": walk, "dataset": dataset, "n": n, "dim": dim, "queries": nq, "k": k, "m": params.m,
               "ef_construction": params.ef_construction, "threads_build": rayon_threads(), "build_s": build_s, "results": results})
        );
    }
    Ok(())
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(weft::runtime::default_threads)
}

/// `--device` (default cpu): the runtime (the GPU build of `.weft/` when a
/// GPU is asked for) and the session. No CPU fallback: a device that cannot
/// run fails the benchmark instead of measuring the CPU under its name.
fn runtime_session(
    a: &Args,
    threads: usize,
) -> anyhow::Result<(std::sync::Arc<Runtime>, SessionOptions, Device)> {
    let device: Device = a.get("device").map_or(Ok(Device::Cpu), |s| s.parse())?;
    let runtime = Runtime::load(
        &RuntimeOptions::default()
            .with_project_dir(".weft")
            .with_prefer_gpu(device != Device::Cpu),
    )?;
    let session = SessionOptions::default()
        .with_intra_threads(threads)
        .with_device(device);
    Ok((runtime, session, device))
}

/// What each loaded encoder ran on, as JSON.
fn providers_json(enc: &BundleEncoders) -> serde_json::Value {
    enc.providers()
        .into_iter()
        .map(|(m, p)| (format!("{m:?}").to_lowercase(), json!(p.to_string())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn encode(a: &Args) -> anyhow::Result<()> {
    let bundle = Bundle::open(need(a, "bundle")?)?;
    let threads: usize = get(a, "threads", 2);
    let repeat: usize = get(a, "repeat", 1);
    let dir = PathBuf::from(need(a, "images")?);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| weft::ingest::SourceKind::of(p) == Some(weft::ingest::SourceKind::Image))
        .collect();
    files.sort();
    let (runtime, session, device) = runtime_session(a, threads)?;
    let opts = EncoderOptions::default().with_session(session.clone());
    let mut enc = BundleEncoders::new(runtime.clone(), bundle.clone(), opts)?;
    let inputs: Vec<Input<'_>> = files.iter().map(|p| Input::ImagePath(p)).collect();
    enc.encode(&inputs[..inputs.len().min(8)]); // warm-up
    let mut full = Vec::new();
    for _ in 0..repeat {
        let t = Instant::now();
        let r = enc.encode(&inputs);
        full.push(t.elapsed().as_secs_f64());
        if let Some((i, Err(e))) = r.iter().enumerate().find(|(_, x)| x.is_err()) {
            anyhow::bail!("{} failed to encode: {e}", files[i].display());
        }
    }
    // Inference only: the model on pre-decoded, pre-normalised batches of 32.
    let spec = bundle.image_spec().expect("image bundle").clone();
    let plane = 3 * spec.size[0] * spec.size[1];
    let mut pixels = vec![0f32; files.len() * plane];
    let t_prep = Instant::now();
    for (i, f) in files.iter().enumerate() {
        let bytes = std::fs::read(f)?;
        weft::encoder::image::preprocess(
            &bytes,
            &f.display().to_string(),
            &spec,
            &Default::default(),
            &mut pixels[i * plane..(i + 1) * plane],
        )?;
    }
    let prep_s = t_prep.elapsed().as_secs_f64();
    let mut s = runtime.session(&bundle.file(&spec.model.model), &session)?;
    let mut infer = Vec::new();
    for r in 0..=repeat {
        let t = Instant::now();
        for chunk in pixels.chunks(32 * plane) {
            let b = chunk.len() / plane;
            let view = ndarray::ArrayView4::from_shape((b, 3, spec.size[0], spec.size[1]), chunk)?;
            let tensor = ort::value::TensorRef::from_array_view(view)?;
            let _ = s.session.run(vec![(
                spec.model.inputs[0].name.clone(),
                ort::session::SessionInputValue::from(tensor),
            )])?;
        }
        if r > 0 {
            infer.push(t.elapsed().as_secs_f64()); // pass 0 warms the session up
        }
    }
    let (fm, _, _) = stats(full);
    let (im, _, _) = stats(infer);
    let n = files.len();
    println!(
        "{}",
        json!({"name": "encode", "impl": "weft", "images": n, "seconds": fm, "images_per_s": n as f64 / fm,
               "inference_only_images_per_s": n as f64 / im,
               "preprocess_one_thread_images_per_s": n as f64 / prep_s, "threads": threads, "peak_rss_mb": peak_rss_mb(),
               "bundle": bundle.name(), "device": format!("{device:?}").to_lowercase(), "providers": providers_json(&enc)})
    );
    Ok(())
}

fn synthetic(
    rng: &mut Rng,
    centres: &[Vec<f32>],
    i: usize,
    dim: usize,
    tokens: usize,
) -> (Vec<f32>, Vec<f32>) {
    let c = &centres[i % centres.len()];
    let toks: Vec<f32> = (0..tokens)
        .flat_map(|_| rng.unit(dim, Some(c), 0.08))
        .collect();
    let mut e = vec![0f32; dim];
    for row in toks.chunks_exact(dim) {
        e.iter_mut().zip(row).for_each(|(a, b)| *a += b);
    }
    (e, toks)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn storage(a: &Args) -> anyhow::Result<()> {
    let (items, dim, tokens) = (
        get(a, "items", 5000usize),
        get(a, "dim", 384usize),
        get(a, "tokens", 50usize),
    );
    let tmp = std::env::temp_dir().join(format!("weft-bench-storage-{}", std::process::id()));
    let mut rows = Vec::new();
    for dtype in [TokenDtype::F32, TokenDtype::F16, TokenDtype::I8] {
        for pool in [1.0f32, 2.0] {
            let dir = tmp.join(format!("{dtype:?}-{pool}"));
            let _ = std::fs::remove_dir_all(&dir);
            let mut rng = Rng(11);
            let centres: Vec<Vec<f32>> = (0..50).map(|_| rng.unit(dim, None, 1.0)).collect();
            let cfg = CollectionConfig::new("bench", "bench", dim)
                .with_token_dtype(dtype)
                .with_pool_factor(pool)
                .with_checkpoint_items(items + 1);
            let c = Collection::create(&dir, cfg)?;
            let t = Instant::now();
            for i in 0..items {
                let (e, toks) = synthetic(&mut rng, &centres, i, dim, tokens);
                c.add(NewItem::new(format!("i{i}"), Modality::Text, e).with_tokens(toks, None))?;
                if i % 1000 == 999 {
                    c.commit()?;
                }
            }
            c.commit()?;
            c.checkpoint()?;
            let ingest_s = t.elapsed().as_secs_f64();
            drop(c);
            let t = Instant::now();
            let c = Collection::open(&dir)?;
            let open_ms = t.elapsed().as_secs_f64() * 1000.0;
            let snap = c.snapshot();
            let stored_tokens: usize = snap
                .live_docs()
                .take(200)
                .map(|d| snap.meta(d).map_or(0, |m| m.n_tokens))
                .sum();
            rows.push(json!({"dtype": format!("{dtype:?}").to_lowercase(), "pool": pool,
                             "bytes_per_item": dir_bytes(&dir) as f64 / items as f64, "open_ms": open_ms, "ingest_s": ingest_s,
                             "tokens_per_item": stored_tokens as f64 / 200f64.min(items as f64)}));
            drop(c);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let _ = std::fs::remove_dir(&tmp);
    println!(
        "{}",
        json!({"name": "storage", "impl": "weft", "items": items, "dim": dim, "tokens": tokens, "rows": rows, "peak_rss_mb": peak_rss_mb()})
    );
    Ok(())
}

fn e2e(a: &Args) -> anyhow::Result<()> {
    let (items, dim, tokens) = (
        get(a, "items", 100_000usize),
        get(a, "dim", 384usize),
        get(a, "tokens", 49usize),
    );
    let (rerank, nqueries) = (get(a, "rerank", 100usize), get(a, "queries", 200usize));
    // Text-model threads; the index build uses the rayon pool (RAYON_NUM_THREADS,
    // which scripts/bench.sh sets to the same --threads as the baseline's).
    let threads: usize = get(a, "threads", rayon_threads());
    // f16 is the collection default and what bench/e2e_python.py stores.
    let dtype: TokenDtype = a.get("dtype").map_or(Ok(TokenDtype::F16), |s| s.parse())?;
    let bundle = Bundle::open(need(a, "bundle")?)?;
    anyhow::ensure!(
        bundle.dim() == dim,
        "--dim {dim} differs from the bundle's {}",
        bundle.dim()
    );
    let dir = std::env::temp_dir().join(format!("weft-bench-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let c = Collection::create(
        &dir,
        CollectionConfig::for_bundle(&bundle)
            .with_token_dtype(dtype)
            .with_checkpoint_items(20_000)
            .with_checkpoint_bytes(get(a, "checkpoint-mib", 256u64) << 20),
    )?;
    // The item stream bench/e2e_python.py regenerates: it prints the same checksum.
    let mut rng = Rng(5);
    let centres: Vec<Vec<f32>> = (0..500).map(|_| rng.unit(dim, None, 1.0)).collect();
    let (mut checksum, mut gen_s) = (0f64, 0f64);
    let t = Instant::now();
    for i in 0..items {
        let g = Instant::now();
        let (e, toks) = synthetic(&mut rng, &centres, i, dim, tokens);
        checksum += f64::from(e[0]);
        gen_s += g.elapsed().as_secs_f64();
        c.add(NewItem::new(format!("i{i}"), Modality::Image, e).with_tokens(toks, None))?;
        if i % 2000 == 1999 {
            c.commit()?;
        }
    }
    c.commit()?;
    c.checkpoint()?;
    let ingest_s = t.elapsed().as_secs_f64() - gen_s;
    drop(c);
    let peak_rss_ingest_mb = peak_rss_mb();
    let disk = dir_bytes(&dir);
    let t = Instant::now();
    let c = Collection::open(&dir)?;
    let open_ms = t.elapsed().as_secs_f64() * 1000.0;
    let (runtime, session, device) = runtime_session(a, threads)?;
    let mut enc = BundleEncoders::new(
        runtime,
        bundle,
        EncoderOptions::default().with_session(session),
    )?;
    let texts: Vec<String> = (0..nqueries)
        .map(|i| format!("a photo of object number {i} on a table"))
        .collect();
    let snap = c.snapshot();
    let opts = SearchOptions::default()
        .with_k(10)
        .with_scorer(Scorer::Filip(Direction::QueryToItem))
        .with_candidates(Candidates::Depth(rerank))
        .with_exact_below(0);
    let mut scratch = SearchScratch::new();
    let (mut excl, mut incl) = (Vec::new(), Vec::new());
    for (i, text) in texts.iter().take(5).chain(&texts).enumerate() {
        let t0 = Instant::now();
        let q = Query::from_encoded(enc.encode(&[Input::Text(text)]).remove(0)?);
        let t1 = Instant::now();
        let hits = search(&snap, &q, &opts, &mut scratch)?;
        anyhow::ensure!(hits.len() == 10, "search returned {}", hits.len());
        if i >= 5 {
            // the first 5 warm up the session and the first pages, as in e2e_python.py
            excl.push(t1.elapsed().as_secs_f64() * 1000.0);
            incl.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
    }
    excl.sort_by(f64::total_cmp);
    incl.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({"name": "e2e", "impl": "weft", "items": items, "dim": dim, "tokens": tokens, "rerank": rerank, "queries": nqueries,
               "dtype": format!("{dtype:?}").to_lowercase(), "scorer": "filip", "checksum": checksum,
               "threads": threads, "threads_build": rayon_threads(),
               "ef": snap.index().params().ef_search.max(rerank),
               "excl_encode": {"p50_ms": percentile(&excl, 0.5), "p99_ms": percentile(&excl, 0.99)},
               "incl_encode": {"p50_ms": percentile(&incl, 0.5), "p99_ms": percentile(&incl, 0.99)},
               "ingest_s": ingest_s, "generate_s": gen_s, "disk_bytes": disk, "bytes_per_item": disk as f64 / items as f64,
               "open_ms": open_ms, "peak_rss_ingest_mb": peak_rss_ingest_mb, "peak_rss_mb": peak_rss_mb(),
               "device": format!("{device:?}").to_lowercase(), "providers": providers_json(&enc)})
    );
    drop(snap);
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Builds one large collection (default 1,000,000 items, 384-d, 50 i8
/// tokens each) in batches of 10,000 commits, then reopens it: build rate,
/// bytes per item, peak RSS, open time, first and steady query latency, and
/// recall@10 of the ANN search against an exact scan of the stored vectors.
fn scale(a: &Args) -> anyhow::Result<()> {
    let (items, dim, tokens) = (
        get(a, "items", 1_000_000usize),
        get(a, "dim", 384usize),
        get(a, "tokens", 50usize),
    );
    let nq = get(a, "queries", 100usize);
    let dtype: TokenDtype = a.get("dtype").map_or(Ok(TokenDtype::I8), |s| s.parse())?;
    let dir = PathBuf::from(a.get("dir").cloned().unwrap_or_else(|| {
        std::env::temp_dir()
            .join(format!("weft-bench-scale-{}", std::process::id()))
            .display()
            .to_string()
    }));
    // --open-only 1: measure opening a collection an earlier run kept.
    let open_only = a.contains_key("open-only");
    if !open_only {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let mut rng = Rng(1_000_000);
    let centres: Vec<Vec<f32>> = (0..1000).map(|_| rng.unit(dim, None, 1.0)).collect();
    // Token rows come from a pool (generating 50 fresh rows per item would
    // dominate the run); embeddings are fresh points around 1000 centres.
    let pool: Vec<Vec<f32>> = (0..4096).map(|_| rng.unit(dim, None, 1.0)).collect();
    let noise = 2.0 / (dim as f32).sqrt();
    let t = Instant::now();
    let mut last = Instant::now();
    let c = match open_only {
        true => None,
        false => Some(Collection::create(
            &dir,
            CollectionConfig::new("bench", "bench", dim).with_token_dtype(dtype),
        )?),
    };
    for i in 0..c.as_ref().map_or(0, |_| items) {
        let c = c.as_ref().expect("building");
        let e = rng.unit(dim, Some(&centres[i % centres.len()]), noise);
        let toks: Vec<f32> = (0..tokens)
            .flat_map(|j| pool[(i * 7 + j * 13) % pool.len()].iter().copied())
            .collect();
        c.add(NewItem::new(format!("i{i}"), Modality::Image, e).with_tokens(toks, None))?;
        if i % 10_000 == 9_999 {
            c.commit()?;
            if last.elapsed().as_secs() >= 30 {
                last = Instant::now();
                eprintln!(
                    "scale: {} items, {:.0} s, {:.0} items/s, {:.1} GB on disk, peak RSS {:.0} MB",
                    i + 1,
                    t.elapsed().as_secs_f64(),
                    (i + 1) as f64 / t.elapsed().as_secs_f64(),
                    dir_bytes(&dir) as f64 / 1e9,
                    peak_rss_mb()
                );
            }
        }
    }
    if let Some(c) = &c {
        c.commit()?;
        c.checkpoint()?;
    }
    let build_s = t.elapsed().as_secs_f64();
    let build_rss = peak_rss_mb();
    drop(c);
    let disk = dir_bytes(&dir);
    let mut qrng = Rng(7);
    let queries: Vec<Vec<f32>> = (0..nq)
        .map(|i| qrng.unit(dim, Some(&centres[(i * 37) % centres.len()]), noise))
        .collect();
    // The very first open and query of the process: with --open-only after
    // dropping the page cache, what a user's first query after a cold start waits.
    let t = Instant::now();
    let c = Collection::open(&dir)?;
    let first_open_ms = t.elapsed().as_secs_f64() * 1000.0;
    c.snapshot().ann(&queries[1 % nq.max(1)], 10, None)?;
    let first_open_and_query_ms = t.elapsed().as_secs_f64() * 1000.0;
    drop(c);
    // Open: maps segments and vector parts, reads the graph file.
    let mut opens = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let c = Collection::open(&dir)?;
        opens.push(t.elapsed().as_secs_f64() * 1000.0);
        drop(c);
    }
    let t = Instant::now();
    let c = Collection::open(&dir)?;
    let info = c.info();
    let snap = c.snapshot();
    let first = snap.ann(&queries[0], 10, None)?;
    let open_and_first_ms = t.elapsed().as_secs_f64() * 1000.0;
    let mut lat = Vec::new();
    let mut found = Vec::new();
    for q in &queries {
        let t = Instant::now();
        found.push(snap.ann(q, 10, None)?);
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    anyhow::ensure!(
        first.len() == 10,
        "the first search returned {}",
        first.len()
    );
    // Exact top-10 of every query in one pass over the stored embeddings.
    let mut exact: Vec<Vec<(u64, f32)>> = vec![Vec::new(); nq];
    for d in snap.live_docs() {
        let v = snap.embedding(d)?;
        for (qi, q) in queries.iter().enumerate() {
            let s = weft::index::dot(q, v);
            let top = &mut exact[qi];
            if top.len() < 10 || s > top[top.len() - 1].1 {
                top.push((d, s));
                top.sort_by(|a, b| b.1.total_cmp(&a.1));
                top.truncate(10);
            }
        }
    }
    let hits: usize = found
        .iter()
        .zip(&exact)
        .map(|(f, e)| {
            f.iter()
                .filter(|(d, _)| e.iter().any(|(x, _)| x == d))
                .count()
        })
        .sum();
    println!(
        "{}",
        json!({"name": "scale", "impl": "weft", "items": items, "dim": dim, "tokens": tokens,
               "dtype": format!("{dtype:?}").to_lowercase(), "open_only": open_only,
               "build_s": build_s, "items_per_s": items as f64 / build_s,
               "build_peak_rss_mb": build_rss, "disk_bytes": disk, "bytes_per_item": disk as f64 / items as f64,
               "segments": info.segments, "first_open_ms": first_open_ms,
               "first_open_and_query_ms": first_open_and_query_ms,
               "open_ms": opens, "open_and_first_query_ms": open_and_first_ms,
               "query_p50_ms": percentile(&lat, 0.5), "query_p99_ms": percentile(&lat, 0.99),
               "recall_at_10": hits as f64 / (10.0 * nq as f64), "ef_search": snap.index().params().ef_search,
               "peak_rss_mb": peak_rss_mb()})
    );
    drop(snap);
    drop(c);
    if a.get("keep").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let (cmd, a) = args();
    match cmd.as_str() {
        "maxsim" => maxsim(&a),
        "ann" => ann(&a),
        "encode" => encode(&a),
        "storage" => storage(&a),
        "e2e" => e2e(&a),
        "scale" => scale(&a),
        other => {
            anyhow::bail!("unknown benchmark `{other}` (maxsim, ann, encode, storage, e2e, scale)")
        }
    }
}
