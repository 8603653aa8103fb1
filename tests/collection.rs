//! Collections through the public API: durability, deletes, compaction,
//! corruption reports, locking, dtypes.

use std::path::{Path, PathBuf};

use weft::bundle::Modality;
use weft::index::VectorIndex;
use weft::store::{Collection, CollectionConfig, NewItem, TokenDtype};
use weft::Error;

mod common;

use common::copy_dir;

const DIM: usize = 16;

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-coll-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Deterministic unit vector from a seed (SplitMix64).
fn vector(seed: u64, dim: usize) -> Vec<f32> {
    let mut s = seed;
    let mut v: Vec<f32> = (0..dim)
        .map(|_| {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// Stored embeddings are re-normalised: equal up to rounding.
fn assert_close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
    }
}

fn item(i: u64) -> NewItem {
    let tokens: Vec<f32> = (0..3).flat_map(|t| vector(i * 10 + t, DIM)).collect();
    NewItem::new(format!("item-{i}"), Modality::Text, vector(i, DIM))
        .with_tokens(tokens, None)
        .with_payload(serde_json::json!({ "n": i, "even": i.is_multiple_of(2) }))
        .with_source(format!("file-{i}.txt"))
}

fn config() -> CollectionConfig {
    CollectionConfig::new("tiny", "hash", DIM).with_checkpoint_items(50)
}

#[test]
fn committed_items_survive_reopen_with_every_dtype() {
    for dtype in [
        TokenDtype::F32,
        TokenDtype::F16,
        TokenDtype::Bf16,
        TokenDtype::I8,
    ] {
        let dir = tempdir(&format!("dtype-{dtype:?}"));
        {
            let c = Collection::create(&dir, config().with_token_dtype(dtype)).unwrap();
            for i in 0..120 {
                c.add(item(i)).unwrap();
            }
            let stats = c.commit().unwrap();
            assert_eq!(stats.added, 120);
            assert!(stats.checkpointed, "120 >= 50 items: a checkpoint runs");
            for i in 120..130 {
                c.add(item(i)).unwrap();
            }
            c.commit().unwrap();
            c.add(item(999)).unwrap(); // staged, never committed
        }
        let c = Collection::open(&dir).unwrap();
        let snap = c.snapshot();
        assert_eq!(snap.len(), 130, "{dtype:?}");
        assert!(
            snap.doc_of("item-999").unwrap().is_none(),
            "uncommitted item visible"
        );
        for i in [0u64, 77, 125] {
            let doc = snap.doc_of(&format!("item-{i}")).unwrap().unwrap();
            assert_close(snap.embedding(doc).unwrap(), &vector(i, DIM));
            let meta = snap.meta(doc).unwrap();
            assert_eq!(meta.source, format!("file-{i}.txt"));
            assert_eq!(meta.n_tokens, 3);
            let payload: serde_json::Value = serde_json::from_str(&meta.payload).unwrap();
            assert_eq!(payload["n"], i);
            let tokens = snap.tokens(doc).unwrap().to_f32();
            let want: Vec<f32> = (0..3).flat_map(|t| vector(i * 10 + t, DIM)).collect();
            let bound = match dtype {
                TokenDtype::F32 => 0.0,
                TokenDtype::F16 => 1e-3,
                TokenDtype::Bf16 => 4e-3,
                TokenDtype::I8 => 0.5 / 127.0 + 1e-6,
            };
            for (a, b) in tokens.iter().zip(&want) {
                assert!((a - b).abs() <= bound, "{dtype:?}: {a} vs {b}");
            }
        }
        c.verify().unwrap();
    }
}

#[test]
fn duplicates_upserts_and_deletes() {
    let dir = tempdir("ops");
    let c = Collection::create(&dir, config()).unwrap();
    c.add(item(1)).unwrap();
    c.commit().unwrap();
    let err = c.add(item(1)).unwrap_err();
    assert!(matches!(err, Error::DuplicateId { .. }), "{err}");
    // upsert replaces: new vector, same id, one live item
    let mut replacement = item(1);
    replacement.embedding = vector(500, DIM);
    c.upsert(replacement).unwrap();
    c.commit().unwrap();
    let snap = c.snapshot();
    assert_eq!(snap.len(), 1);
    let doc = snap.doc_of("item-1").unwrap().unwrap();
    assert_close(snap.embedding(doc).unwrap(), &vector(500, DIM));
    // delete hides at once, inside the search
    assert!(c.delete("item-1").unwrap());
    assert!(!c.delete("nope").unwrap());
    c.commit().unwrap();
    let snap = c.snapshot();
    assert_eq!(snap.len(), 0);
    assert!(snap.ann(&vector(500, DIM), 5, None).unwrap().is_empty());
    // wrong dimension and NaN are refused with the item named
    let bad = NewItem::new("short", Modality::Text, vec![1.0; DIM - 1]);
    let err = c.add(bad).unwrap_err().to_string();
    assert!(
        err.contains("short") && err.contains("expected 16"),
        "{err}"
    );
    let mut nan = item(5);
    nan.embedding[0] = f32::NAN;
    assert!(c.add(nan).unwrap_err().to_string().contains("item-5"));
}

#[test]
fn a_reader_keeps_its_snapshot_while_the_writer_commits() {
    let dir = tempdir("snap");
    let c = Collection::create(&dir, config()).unwrap();
    for i in 0..10 {
        c.add(item(i)).unwrap();
    }
    c.commit().unwrap();
    let before = c.snapshot();
    for i in 10..200 {
        c.add(item(i)).unwrap();
    }
    c.delete("item-3").unwrap();
    c.commit().unwrap();
    assert_eq!(before.len(), 10);
    assert!(before.doc_of("item-3").unwrap().is_some());
    let hits = before.ann(&vector(150, DIM), 5, None).unwrap();
    assert!(
        hits.iter().all(|(d, _)| *d < 10),
        "old snapshot sees new items: {hits:?}"
    );
    assert_eq!(c.snapshot().len(), 199);
    // another process-level reader sees the committed state
    let reader = Collection::open(&dir).unwrap();
    assert_eq!(reader.snapshot().len(), 199);
}

#[test]
fn delete_and_compaction_keep_search_correct_and_reclaim_space() {
    let dir = tempdir("compact");
    let c = Collection::create(&dir, config()).unwrap();
    for i in 0..300 {
        c.add(item(i)).unwrap();
    }
    c.commit().unwrap();
    for i in (0..300).filter(|i| i % 3 != 0) {
        c.delete(&format!("item-{i}")).unwrap();
    }
    c.commit().unwrap();
    c.checkpoint().unwrap();
    let before = c.info();
    assert_eq!(before.items, 100);
    assert_eq!(before.deleted, 200);
    let check = |c: &Collection| {
        let snap = c.snapshot();
        for i in (0..300).step_by(7) {
            let hits = snap.ann(&vector(i, DIM), 3, None).unwrap();
            let ids: Vec<String> = hits
                .iter()
                .map(|(d, _)| snap.meta(*d).unwrap().id)
                .collect();
            if i % 3 == 0 {
                assert_eq!(
                    ids[0],
                    format!("item-{i}"),
                    "live item is its own nearest neighbour"
                );
            }
            assert!(
                ids.iter()
                    .all(|id| id[5..].parse::<u64>().unwrap() % 3 == 0),
                "deleted item returned: {ids:?}"
            );
        }
    };
    check(&c);
    c.compact().unwrap();
    let after = c.info();
    assert_eq!(after.items, 100);
    assert_eq!(after.deleted, 0);
    assert!(
        after.disk_bytes < before.disk_bytes,
        "{} !< {}",
        after.disk_bytes,
        before.disk_bytes
    );
    check(&c);
    drop(c);
    let c = Collection::open_writer(&dir).unwrap();
    check(&c);
    c.verify().unwrap();
    // adding after compaction continues the doc numbering
    c.add(item(1000)).unwrap();
    c.commit().unwrap();
    assert_eq!(c.snapshot().len(), 101);
}

#[test]
fn compaction_streams_several_index_batches_and_keeps_every_item_byte_for_byte() {
    // more live items than one compaction batch (8,192), spread over segments
    let dir = tempdir("compact-stream");
    let c = Collection::create(&dir, config().with_checkpoint_items(3000)).unwrap();
    let n = 9000u64;
    for i in 0..n {
        c.add(item(i)).unwrap();
        if i % 1000 == 999 {
            c.commit().unwrap();
        }
    }
    for i in (0..n).step_by(5) {
        c.delete(&format!("item-{i}")).unwrap();
    }
    c.commit().unwrap();
    let snap = c.snapshot();
    let dump = |snap: &weft::store::Snapshot| -> Vec<_> {
        snap.live_docs()
            .map(|d| {
                let t = snap.tokens(d).unwrap().to_f32();
                (
                    snap.meta(d).unwrap(),
                    snap.embedding(d).unwrap().to_vec(),
                    t,
                )
            })
            .collect()
    };
    let before = dump(&snap);
    drop(snap);
    assert_eq!(before.len(), 7200);
    c.compact().unwrap();
    let snap = c.snapshot();
    assert_eq!(c.info().segments, 1);
    let after = dump(&snap);
    assert!(before == after, "items changed in compaction");
    for i in [1u64, 2, 4999, 8999] {
        let hits = snap.ann(&vector(i, DIM), 1, None).unwrap();
        assert_eq!(snap.meta(hits[0].0).unwrap().id, format!("item-{i}"));
    }
    assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
    drop(snap);
    drop(c);
    Collection::open(&dir).unwrap().verify().unwrap();
}

#[test]
fn a_second_writer_is_refused() {
    let dir = tempdir("lock");
    let c = Collection::create(&dir, config()).unwrap();
    let err = Collection::open_writer(&dir).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert!(err.to_string().contains("locked"), "{err}");
    // readers are fine
    Collection::open(&dir).unwrap();
    drop(c);
    Collection::open_writer(&dir).unwrap();
}

#[test]
fn another_bundle_is_refused() {
    let dir = tempdir("bundle");
    let c = Collection::create(&dir, CollectionConfig::new("tiny-vl", "abc", 32)).unwrap();
    let bundle = weft::bundle::Bundle::open(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bundles/tiny-mol"),
    )
    .unwrap();
    let err = c.check_bundle(&bundle).unwrap_err().to_string();
    assert!(err.contains("tiny-vl") && err.contains("tiny-mol"), "{err}");
}

#[test]
fn a_flipped_byte_in_any_file_is_reported_by_name() {
    let dir = tempdir("corrupt");
    {
        let c = Collection::create(&dir, config()).unwrap();
        for i in 0..60 {
            c.add(item(i)).unwrap();
        }
        c.commit().unwrap(); // checkpoint: segment + hnsw dump
        c.delete("item-4").unwrap();
        c.commit().unwrap();
        c.checkpoint().unwrap(); // del file
        for i in 60..70 {
            c.add(item(i)).unwrap();
        }
        c.commit().unwrap(); // wal records
        c.add(item(70)).unwrap();
        c.commit().unwrap(); // a second wal batch, so damage is not at the tail
    }
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "LOCK")
        .collect();
    names.sort();
    for kind in [
        "collection.cfg",
        "MANIFEST",
        ".idx",
        ".ids",
        ".vec",
        ".tlog",
        ".meta",
        "del-",
        ".graph",
        ".vec.q8",
        "hnsw-",
        "wal-",
    ] {
        assert!(
            names.iter().any(|n| n.contains(kind)),
            "no {kind} file in {names:?}"
        );
    }
    // A segment with its own token file (checkpointed from a version 2 log).
    let legacy = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/collection-v2-wal-v2");
    let legacy_tok = golden_files(&legacy)
        .into_iter()
        .filter(|n| n.ends_with(".tok"))
        .collect::<Vec<_>>();
    assert!(!legacy_tok.is_empty());
    let tlog = names.iter().find(|n| n.ends_with(".tlog")).unwrap().clone();
    let cases = names
        .iter()
        .map(|n| (dir.as_path(), n.clone(), 1))
        .chain(legacy_tok.into_iter().map(|n| (legacy.as_path(), n, 1)))
        // A .tlog holds the whole log: flip inside each third of it.
        .chain([2, 3].map(|third| (dir.as_path(), tlog.clone(), third)));
    for (dir, name, third) in cases {
        let copy = tempdir(&format!("corrupt-{name}"));
        copy_dir(dir, &copy);
        let path = copy.join(&name);
        let mut bytes = std::fs::read(&path).unwrap();
        // Flip a byte a third of the way in (inside the first records or
        // entries), or half-way, or five sixths of the way.
        let (num, den) = [(1, 3), (1, 2), (5, 6)][third - 1];
        let at = 16 + (bytes.len() - 32) * num / den;
        bytes[at] ^= 0x5a;
        std::fs::write(&path, &bytes).unwrap();
        let outcome = Collection::open(&copy).and_then(|c| c.verify().map(|_| c));
        let err = match outcome {
            Err(e) => e.to_string(),
            Ok(_) => panic!("flipped byte {at} of {name} went unnoticed"),
        };
        assert!(
            err.contains(name.as_str()),
            "error for {name} does not name it: {err}"
        );
        let _ = std::fs::remove_dir_all(&copy);
    }
}

/// The footer holds each file's whole-body checksum: a flip there (with the
/// body intact) is damage too, and `verify` names the file.
#[test]
fn a_flipped_footer_checksum_in_any_file_is_reported_by_name() {
    let dir = tempdir("footer");
    {
        let c = Collection::create(&dir, config()).unwrap();
        for i in 0..60 {
            c.add(item(i)).unwrap();
        }
        c.commit().unwrap();
        c.delete("item-4").unwrap();
        c.update_payload("item-5", serde_json::json!({"tag": 1}))
            .unwrap();
        c.commit().unwrap();
        c.checkpoint().unwrap();
    }
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "LOCK" && !n.starts_with("wal-"))
        .collect();
    names.sort();
    assert!(names
        .iter()
        .any(|n| n.ends_with(".vec") && n.starts_with("hnsw-")));
    assert!(names.iter().any(|n| n.starts_with("pay-")));
    for name in &names {
        let copy = tempdir(&format!("footer-{name}"));
        copy_dir(&dir, &copy);
        let path = copy.join(name);
        let mut bytes = std::fs::read(&path).unwrap();
        // Footer: body length u64 | crc32 u32 | end magic.
        let crc_at = bytes.len() - 8;
        bytes[crc_at] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let outcome = Collection::open(&copy).and_then(|c| c.verify().map(|_| c));
        let err = match outcome {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a flipped footer checksum of {name} went unnoticed"),
        };
        assert!(err.contains(name.as_str()), "{name}: {err}");
    }
}

#[test]
fn token_pooling_at_ingest_halves_the_tokens() {
    let dir = tempdir("pool");
    let c = Collection::create(&dir, config().with_pool_factor(2.0)).unwrap();
    let tokens: Vec<f32> = (0..8).flat_map(|t| vector(t, DIM)).collect();
    c.add(NewItem::new("p", Modality::Image, vector(1, DIM)).with_tokens(tokens, Some([2, 4])))
        .unwrap();
    c.commit().unwrap();
    let snap = c.snapshot();
    let meta = snap.meta(snap.doc_of("p").unwrap().unwrap()).unwrap();
    assert_eq!(meta.n_tokens, 4);
    assert_eq!(meta.grid, None, "pooled tokens are no longer patches");
    let err = Collection::create(tempdir("pool-bad"), config().with_pool_factor(0.5))
        .unwrap_err()
        .to_string();
    assert!(err.contains("pool_factor"), "{err}");
}

/// Writes the collection the format golden files hold: two checkpoints
/// (two segments, two HNSW vector parts), a tombstone file, and WAL records
/// after the last checkpoint. Single-threaded and seeded, so byte-stable.
fn write_golden_collection(dir: &Path) {
    let c = Collection::create(dir, config().with_token_dtype(TokenDtype::F16)).unwrap();
    for i in 0..50 {
        c.add(item(i)).unwrap();
    }
    c.commit().unwrap(); // checkpoint 1
    c.delete("item-3").unwrap();
    for i in 50..60 {
        c.add(item(i)).unwrap();
    }
    c.commit().unwrap();
    c.checkpoint().unwrap(); // checkpoint 2: seg 2, del file, hnsw part 2
    c.add(item(60)).unwrap();
    c.upsert(item(5).with_payload(serde_json::json!({"n": 5, "updated": true})))
        .unwrap();
    c.commit().unwrap(); // WAL only
}

const GOLDEN: &str = "tests/golden/collection-v2";

fn golden_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "LOCK")
        .collect();
    names.sort();
    names
}

/// The on-disk format is pinned: a collection written today must equal the
/// committed golden files byte for byte, and the golden files must open and
/// answer. A failure here means the format changed: bump
/// `store::format::FORMAT_VERSION`, then re-bless with
/// `WEFT_BLESS=1 cargo test --test collection format_matches`.
#[test]
fn format_matches_the_golden_files_and_they_still_open() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    let fresh = tempdir("golden");
    write_golden_collection(&fresh);
    if std::env::var_os("WEFT_BLESS").is_some() {
        let _ = std::fs::remove_dir_all(&golden);
        std::fs::create_dir_all(&golden).unwrap();
        for name in golden_files(&fresh) {
            std::fs::copy(fresh.join(&name), golden.join(&name)).unwrap();
        }
    }
    assert_eq!(golden_files(&fresh), golden_files(&golden), "file set");
    for name in golden_files(&golden) {
        let want = std::fs::read(golden.join(&name)).unwrap();
        let got = std::fs::read(fresh.join(&name)).unwrap();
        assert!(
            want == got,
            "{name} differs from {GOLDEN}/{name}: the format changed (see this test's doc)"
        );
    }
    // Read the committed copy (read-only open never writes).
    let c = Collection::open(&golden).unwrap();
    c.verify().unwrap();
    let snap = c.snapshot();
    assert_eq!(snap.len(), 60); // 61 added, item-3 deleted, item-5 replaced
    assert!(snap.doc_of("item-3").unwrap().is_none());
    let d5 = snap.doc_of("item-5").unwrap().unwrap();
    assert!(snap.meta(d5).unwrap().payload.contains("updated"));
    let d42 = snap.doc_of("item-42").unwrap().unwrap();
    assert_close(snap.embedding(d42).unwrap(), &vector(42, DIM));
    let hits = snap.ann(&vector(42, DIM), 1, None).unwrap();
    assert_eq!(hits[0].0, d42);
    let _ = std::fs::remove_dir_all(&fresh);
}

/// The same collection as written with 64 KiB checksum chunks in the HNSW
/// vector part and code file (before 16 KiB): the chunk size is read from
/// the files, so it opens, verifies and answers.
#[test]
fn a_collection_with_64k_checksum_chunks_opens() {
    let golden =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/collection-v2-64k-chunks");
    let c = Collection::open(&golden).unwrap();
    c.verify().unwrap();
    let snap = c.snapshot();
    assert_eq!(snap.len(), 60);
    let d42 = snap.doc_of("item-42").unwrap().unwrap();
    assert_eq!(snap.ann(&vector(42, DIM), 1, None).unwrap()[0].0, d42);
}

/// Tokens of `item(i)` as the collection's f16 stores them, read back.
fn token_rows(snap: &weft::store::Snapshot, id: &str) -> Vec<f32> {
    let doc = snap.doc_of(id).unwrap().unwrap();
    snap.tokens(doc).unwrap().to_f32()
}

/// The same collection with its write-ahead log at version 2 (before
/// 2026-12: add records whose token blocks are not aligned in the file). It
/// opens and answers, with the logged items' tokens; a writer keeps
/// appending version 2 records to that log (a build from before still
/// reads it), and the next checkpoint starts a version 3 log.
#[test]
fn a_version_2_write_ahead_log_is_read_and_appended_to_as_version_2() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/collection-v2-wal-v2");
    let version =
        |p: &Path| u32::from_le_bytes(std::fs::read(p).unwrap()[8..12].try_into().unwrap());
    assert_eq!(version(&golden.join("wal-2.log")), 2);
    let c = Collection::open(&golden).unwrap();
    c.verify().unwrap();
    let snap = c.snapshot();
    assert_eq!(snap.len(), 60);
    let fresh = tempdir("wal-v3");
    write_golden_collection(&fresh);
    let now = Collection::open(&fresh).unwrap().snapshot();
    // item-60 and the new item-5 are in the log only
    for id in ["item-60", "item-5", "item-42"] {
        assert_eq!(token_rows(&snap, id), token_rows(&now, id), "{id}");
    }
    drop((snap, c, now));
    let copy = tempdir("wal-v2");
    copy_dir(&golden, &copy);
    let c = Collection::open_writer(&copy).unwrap();
    c.add(item(70)).unwrap();
    c.commit().unwrap();
    assert_eq!(version(&copy.join("wal-2.log")), 2);
    let want = token_rows(&c.snapshot(), "item-70");
    drop(c);
    let c = Collection::open_writer(&copy).unwrap();
    assert_eq!(token_rows(&c.snapshot(), "item-70"), want);
    c.checkpoint().unwrap();
    assert_eq!(version(&copy.join("wal-3.log")), 3);
    c.add(item(71)).unwrap();
    c.commit().unwrap();
    drop(c);
    let c = Collection::open(&copy).unwrap();
    c.verify().unwrap();
    let snap = c.snapshot();
    assert_eq!(snap.len(), 62);
    assert_eq!(token_rows(&snap, "item-70"), want);
    assert_eq!(token_rows(&snap, "item-71").len(), 3 * DIM);
    drop((snap, c));
    let _ = std::fs::remove_dir_all(&copy);
    let _ = std::fs::remove_dir_all(&fresh);
}

/// The same collection as written before HNSW code files existed (its
/// manifest names none) opens and answers; the next checkpoint writes a
/// code file for every vector part.
#[test]
fn a_collection_from_before_code_files_opens_and_gains_them() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/collection-v2-no-codes");
    assert!(!golden_files(&golden).iter().any(|n| n.ends_with(".q8")));
    let c = Collection::open(&golden).unwrap();
    c.verify().unwrap();
    let snap = c.snapshot();
    let d42 = snap.doc_of("item-42").unwrap().unwrap();
    assert_eq!(snap.ann(&vector(42, DIM), 1, None).unwrap()[0].0, d42);
    drop((snap, c));
    let copy = tempdir("no-codes");
    copy_dir(&golden, &copy);
    let c = Collection::open_writer(&copy).unwrap();
    c.add(item(70)).unwrap();
    c.commit().unwrap();
    c.checkpoint().unwrap();
    let names = golden_files(&copy);
    for part in names
        .iter()
        .filter(|n| n.starts_with("hnsw-") && n.ends_with(".vec"))
    {
        assert!(names.contains(&format!("{part}.q8")), "{part}: {names:?}");
    }
    c.verify().unwrap();
    let snap = c.snapshot();
    assert_eq!(snap.ann(&vector(42, DIM), 1, None).unwrap()[0].0, d42);
    drop((snap, c));
    let _ = std::fs::remove_dir_all(&copy);
}

/// A writer's uncheckpointed items are bounded in bytes, not only in count:
/// with the item threshold out of reach, crossing `checkpoint_bytes` checkpoints.
#[test]
fn a_checkpoint_runs_once_uncheckpointed_items_reach_checkpoint_bytes() {
    let dir = tempdir("ckpt-bytes");
    // One item here: 16-d embedding + 3 f16 token rows + id/source/payload,
    // about 200 bytes; 10 items stay below 4000 bytes, 30 cross it.
    let c = Collection::create(
        &dir,
        config()
            .with_checkpoint_items(1_000_000)
            .with_checkpoint_bytes(4000),
    )
    .unwrap();
    for i in 0..10 {
        c.add(item(i)).unwrap();
    }
    assert!(!c.commit().unwrap().checkpointed);
    assert_eq!(c.info().segments, 0);
    for i in 10..30 {
        c.add(item(i)).unwrap();
    }
    assert!(c.commit().unwrap().checkpointed);
    assert_eq!(c.info().segments, 1);
    assert_eq!(c.info().wal_items, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Three commits of six items each, all still in the write-ahead log.
fn three_wal_batches(tag: &str) -> (PathBuf, PathBuf) {
    let dir = tempdir(tag);
    let c = Collection::create(&dir, config()).unwrap();
    for batch in 0..3 {
        for i in 0..6 {
            c.add(item(batch * 6 + i)).unwrap();
        }
        c.commit().unwrap();
    }
    assert_eq!(c.info().wal_items, 18);
    drop(c);
    let wal = dir.join("wal-0.log");
    assert!(wal.is_file());
    (dir, wal)
}

/// Committed token blocks stay only in the log: searches read them through
/// a mapping, and a checkpoint keeps the log as the segment's `.tlog`
/// (no token byte is written twice). A change to the log after the commit
/// is caught against the checksums taken at commit: by `verify` before the
/// checkpoint (naming the log), by the read and `verify` after it (naming
/// the `.tlog`).
#[test]
fn logged_tokens_are_read_from_the_log_and_a_checkpoint_keeps_the_log() {
    let (dir, wal) = three_wal_batches("walread");
    let c = Collection::open_writer(&dir).unwrap();
    let snap = c.snapshot();
    let want: Vec<Vec<f32>> = (0..18)
        .map(|i| token_rows(&snap, &format!("item-{i}")))
        .collect();
    assert_eq!(want[7].len(), 3 * DIM);
    // One byte of item-13's token block, in place (what another program
    // could do): item-14's record starts 34 bytes before its id, and
    // item-13's 96-byte token block ends right before that record.
    let bytes = std::fs::read(&wal).unwrap();
    let at = bytes
        .windows(7)
        .position(|w| w == b"item-14")
        .expect("item-14's record")
        - 40;
    let poke = |path: &Path, byte: u8| {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.write_all_at(&[byte], at as u64).unwrap();
    };
    poke(&wal, bytes[at] ^ 0x40);
    // A new handle's replay reports it.
    assert!(Collection::open(&dir).unwrap().info().damaged.is_some());
    // The open writer (opened before the change) finds it when verifying.
    let err = c.verify().unwrap_err().to_string();
    assert!(
        err.contains("wal-0.log") && err.contains("checksum"),
        "{err}"
    );
    // Its checkpoint links the log as the segment's .tlog (no token file).
    c.checkpoint().unwrap();
    let names = golden_files(&dir);
    assert!(names.contains(&"seg-000000.tlog".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.ends_with(".tok")), "{names:?}");
    assert_eq!(c.info().wal_items, 0);
    let tlog = dir.join("seg-000000.tlog");
    let snap = c.snapshot();
    let doc13 = snap.doc_of("item-13").unwrap().unwrap();
    let err = snap.tokens(doc13).unwrap_err().to_string();
    assert!(
        err.contains("seg-000000.tlog") && err.contains("checksum"),
        "{err}"
    );
    let err = c.verify().unwrap_err().to_string();
    assert!(err.contains("seg-000000.tlog"), "{err}");
    // Put back: every block reads as committed, and the .tlog verifies.
    poke(&tlog, bytes[at]);
    c.verify().unwrap();
    for (i, w) in want.iter().enumerate() {
        assert_eq!(&token_rows(&snap, &format!("item-{i}")), w, "item-{i}");
    }
    drop((snap, c));
    let c = Collection::open(&dir).unwrap();
    c.verify().unwrap();
    assert_eq!(token_rows(&c.snapshot(), "item-13"), want[13]);
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A checkpoint that failed after linking its log leaves `seg-N.tlog`
/// behind, which no manifest names: the retry replaces it.
#[test]
fn a_checkpoint_replaces_a_stale_token_log_link() {
    let (dir, _wal) = three_wal_batches("stalelink");
    let c = Collection::open_writer(&dir).unwrap();
    std::fs::write(dir.join("seg-000000.tlog"), b"left by a failed checkpoint").unwrap();
    c.checkpoint().unwrap();
    c.verify().unwrap();
    let snap = c.snapshot();
    assert_eq!(token_rows(&snap, "item-9").len(), 3 * DIM);
    drop((snap, c));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_flipped_bit_anywhere_in_the_wal_is_reported_and_never_truncated() {
    let (dir, wal) = three_wal_batches("walflip");
    let clean = std::fs::read(&wal).unwrap();
    let copy = tempdir("walflip-copy");
    let mut missed = Vec::new();
    for at in 0..clean.len() {
        copy_dir(&dir, &copy);
        let path = copy.join("wal-0.log");
        let mut bytes = clean.clone();
        bytes[at] ^= 1 << (at % 8);
        std::fs::write(&path, &bytes).unwrap();
        let reported = match Collection::open(&copy) {
            Err(e) => e.to_string().contains("wal-0.log"),
            Ok(c) => {
                let damaged = c.info().damaged.is_some();
                damaged && c.verify().is_err() && c.snapshot().len() < 18
            }
        };
        if !reported {
            missed.push(at);
            continue;
        }
        // No writer opens (it would cut acknowledged items), and trying
        // changes nothing.
        let err = Collection::open_writer(&copy).unwrap_err().to_string();
        assert!(err.contains("wal-0.log"), "byte {at}: {err}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "byte {at}");
    }
    assert!(missed.is_empty(), "flips not reported at bytes {missed:?}");
}

#[test]
fn the_length_flip_from_the_report_is_caught_and_repair_keeps_a_copy() {
    // The reproduction of the hardening issue: b[19] ^= 1 in the WAL.
    let (dir, wal) = three_wal_batches("walrepair");
    let mut bytes = std::fs::read(&wal).unwrap();
    bytes[19] ^= 1;
    std::fs::write(&wal, &bytes).unwrap();
    let c = Collection::open(&dir).unwrap();
    let damage = c.info().damaged.expect("damage reported");
    assert!(damage.contains("offset 16"), "{damage}");
    assert!(c.verify().unwrap_err().to_string().contains("wal-0.log"));
    assert_eq!(c.snapshot().len(), 0);
    drop(c);
    assert!(matches!(
        Collection::open_writer(&dir),
        Err(Error::Corrupted { .. })
    ));
    let report = Collection::repair(&dir).unwrap();
    let copy = report.copy.expect("a copy of the damaged log");
    assert_eq!(std::fs::read(&copy).unwrap(), bytes);
    assert_eq!(report.bytes_cut, bytes.len() as u64 - 16);
    // The copy survives the writer's clean-up of unknown files.
    let c = Collection::open_writer(&dir).unwrap();
    assert!(copy.is_file());
    c.add(item(100)).unwrap();
    c.commit().unwrap();
    assert_eq!(c.snapshot().len(), 1);
    // An intact log is left as it is.
    drop(c);
    assert_eq!(Collection::repair(&dir).unwrap().copy, None);
}

#[test]
fn a_torn_tail_after_the_last_commit_is_dropped_not_reported() {
    let (dir, wal) = three_wal_batches("waltorn");
    let committed = std::fs::read(&wal).unwrap();
    // A fourth commit whose records were torn: its bytes, cut anywhere
    // before its commit record, or with zeroed sectors.
    {
        let c = Collection::open_writer(&dir).unwrap();
        for i in 18..24 {
            c.add(item(i)).unwrap();
        }
        c.commit().unwrap();
    }
    let full = std::fs::read(&wal).unwrap();
    let fourth = committed.len()..full.len();
    let copy = tempdir("waltorn-copy");
    for cut in fourth.clone().step_by(7).chain([full.len() - 1]) {
        copy_dir(&dir, &copy);
        std::fs::write(copy.join("wal-0.log"), &full[..cut]).unwrap();
        let c = Collection::open(&copy).unwrap();
        assert_eq!(c.info().damaged, None, "cut at {cut}");
        assert_eq!(c.snapshot().len(), 18, "cut at {cut}");
        drop(c);
        let c = Collection::open_writer(&copy).unwrap();
        assert_eq!(c.snapshot().len(), 18);
        drop(c);
        assert_eq!(std::fs::read(copy.join("wal-0.log")).unwrap(), committed);
    }
    // Whole length, but the sectors of the fourth commit never written.
    for zeroed in [fourth.start.div_ceil(512) * 512, full.len() - 17] {
        copy_dir(&dir, &copy);
        let mut bytes = full.clone();
        let from = zeroed.max(fourth.start);
        bytes[from..].iter_mut().for_each(|b| *b = 0);
        std::fs::write(copy.join("wal-0.log"), &bytes).unwrap();
        let c = Collection::open(&copy).unwrap();
        assert_eq!(c.info().damaged, None, "zeroed from {from}");
        assert_eq!(c.snapshot().len(), 18);
    }
}

#[test]
fn updating_a_payload_keeps_the_doc_and_its_index_node_through_reopen_checkpoint_and_compaction() {
    let dir = tempdir("payload-update");
    let payload_of = |c: &Collection, id: &str| -> serde_json::Value {
        let snap = c.snapshot();
        let doc = snap.doc_of(id).unwrap().expect("item present");
        serde_json::from_str(&snap.meta(doc).unwrap().payload).unwrap()
    };
    let doc_of = |c: &Collection, id: &str| c.snapshot().doc_of(id).unwrap().unwrap();
    {
        let c = Collection::create(&dir, config()).unwrap();
        for i in 0..60 {
            c.add(item(i)).unwrap();
        }
        c.commit().unwrap(); // checkpoint: items 0..60 in a segment
        c.add(item(60)).unwrap();
        c.commit().unwrap(); // item 60 in the log only
        let (doc_3, doc_60) = (doc_of(&c, "item-3"), doc_of(&c, "item-60"));
        let nodes = c.snapshot().index().len();
        assert!(c
            .update_payload("item-3", serde_json::json!({"tag": "a"}))
            .unwrap());
        assert!(c
            .update_payload("item-60", serde_json::json!({"tag": "b"}))
            .unwrap());
        assert!(!c
            .update_payload("no-such-item", serde_json::json!({}))
            .unwrap());
        // Staged in the same batch: an add, then its payload update; a
        // delete, then an update of what no longer exists.
        c.add(item(61)).unwrap();
        assert!(c
            .update_payload("item-61", serde_json::json!({"tag": "c"}))
            .unwrap());
        c.delete("item-4").unwrap();
        assert!(!c
            .update_payload("item-4", serde_json::json!({"tag": "gone"}))
            .unwrap());
        let stats = c.commit().unwrap();
        assert_eq!((stats.added, stats.deleted, stats.updated), (1, 1, 3));
        assert_eq!(doc_of(&c, "item-3"), doc_3, "the doc id stays");
        assert_eq!(doc_of(&c, "item-60"), doc_60, "the doc id stays");
        assert_eq!(
            c.snapshot().index().len(),
            nodes + 1,
            "only the added item joins the index"
        );
        assert_eq!(payload_of(&c, "item-3"), serde_json::json!({"tag": "a"}));
        assert_eq!(payload_of(&c, "item-61"), serde_json::json!({"tag": "c"}));
        assert_eq!(
            payload_of(&c, "item-5"),
            serde_json::json!({"n": 5, "even": false})
        );
    }
    // The log replays the updates.
    let c = Collection::open_writer(&dir).unwrap();
    assert_eq!(payload_of(&c, "item-60"), serde_json::json!({"tag": "b"}));
    assert_eq!(payload_of(&c, "item-61"), serde_json::json!({"tag": "c"}));
    // A checkpoint keeps them in pay-N.bin; a second update wins.
    c.update_payload("item-3", serde_json::json!({"tag": "a2"}))
        .unwrap();
    c.commit().unwrap();
    c.checkpoint().unwrap();
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n.starts_with("pay-")), "{names:?}");
    drop(c);
    let c = Collection::open_writer(&dir).unwrap();
    c.verify().unwrap();
    assert_eq!(payload_of(&c, "item-3"), serde_json::json!({"tag": "a2"}));
    assert_eq!(payload_of(&c, "item-60"), serde_json::json!({"tag": "b"}));
    // A search filter sees the new payload.
    let snap = c.snapshot();
    let doc_3 = snap.doc_of("item-3").unwrap().unwrap();
    let hits = snap
        .ann(
            &vector(3, DIM),
            5,
            Some(&|d| snap.meta(d).is_ok_and(|m| m.payload.contains("\"a2\""))),
        )
        .unwrap();
    assert_eq!(hits.first().map(|h| h.0), Some(doc_3));
    drop(snap);
    // An upsert replaces the item, overlay and all.
    c.upsert(item(60)).unwrap();
    c.commit().unwrap();
    assert_eq!(payload_of(&c, "item-60")["n"], 60);
    // Compaction folds the overlay into the segment and drops the file.
    c.compact().unwrap();
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with("pay-")), "{names:?}");
    assert_eq!(payload_of(&c, "item-3"), serde_json::json!({"tag": "a2"}));
    drop(c);
    let c = Collection::open(&dir).unwrap();
    c.verify().unwrap();
    assert_eq!(payload_of(&c, "item-3"), serde_json::json!({"tag": "a2"}));
    assert_eq!(payload_of(&c, "item-61"), serde_json::json!({"tag": "c"}));
    assert!(c.snapshot().doc_of("item-4").unwrap().is_none());
}

/// With `weft::handle_sigbus` installed, a file cut short by another
/// program under its mapping turns the reads past its new end into zeros:
/// the search that made them, `verify` and compaction fail naming the file,
/// and the process goes on.
#[test]
fn a_file_cut_under_its_mapping_fails_search_verify_and_compaction_naming_it() {
    weft::handle_sigbus();
    let dir = tempdir("cut-mapped");
    let c = Collection::create(&dir, config()).unwrap();
    for i in 0..60 {
        c.add(item(i)).unwrap();
    }
    c.commit().unwrap();
    c.compact().unwrap();
    let q = weft::search::Query::new(vector(7, DIM), vector(70, DIM));
    let opts = weft::search::SearchOptions::default()
        .with_k(5)
        .with_candidates(weft::search::Candidates::Exact)
        .with_scorer("filip".parse().unwrap());
    let search = |c: &Collection| {
        weft::search::search(
            &c.snapshot(),
            &q,
            &opts,
            &mut weft::search::SearchScratch::new(),
        )
    };
    assert_eq!(search(&c).unwrap()[0].id, "item-7");
    let cut: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("seg-")
                && (n.ends_with(".vec") || n.ends_with(".tok") || n.ends_with(".ids"))
        })
        .collect();
    assert_eq!(cut.len(), 3, "{cut:?}");
    for p in &cut {
        std::fs::OpenOptions::new()
            .write(true)
            .open(p)
            .unwrap()
            .set_len(0)
            .unwrap();
    }
    let named = |e: Error| {
        let msg = e.to_string();
        assert!(
            matches!(e, Error::Corrupted { .. })
                && cut
                    .iter()
                    .any(|p| msg.contains(p.file_name().unwrap().to_str().unwrap()))
                && msg.contains("while open"),
            "{msg}"
        );
    };
    named(search(&c).unwrap_err());
    named(search(&c).unwrap_err());
    named(c.verify().unwrap_err());
    named(c.compact().unwrap_err());
    // Ids looked up in the zeroed id table are an error, not "absent": no
    // duplicate is added, nothing reaches the log.
    named(c.snapshot().doc_of("item-3").unwrap_err());
    assert!(c.add(item(3)).is_err());
    let wal_before = wal_bytes(&dir);
    c.upsert(item(4)).unwrap();
    named(c.commit().unwrap_err());
    let wal_after = wal_bytes(&dir);
    assert_eq!(wal_before, wal_after, "a record reached the log");
}

/// A cut inside a file's last page reads zeros without a fault: the size
/// check before writes and in `verify` still names the file, and nothing
/// reaches the log.
#[test]
fn a_file_cut_inside_its_last_page_fails_verify_and_commit_naming_it() {
    weft::handle_sigbus();
    let dir = tempdir("cut-last-page");
    let c = Collection::create(&dir, config()).unwrap();
    for i in 0..60 {
        c.add(item(i)).unwrap();
    }
    c.commit().unwrap();
    c.compact().unwrap();
    let meta = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("seg-") && n.ends_with(".meta")
        })
        .unwrap();
    let len = std::fs::metadata(&meta).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&meta)
        .unwrap()
        .set_len(len - 8)
        .unwrap();
    let name = meta.file_name().unwrap().to_str().unwrap().to_string();
    let named = |e: Error| {
        let msg = e.to_string();
        assert!(
            matches!(e, Error::Corrupted { .. })
                && msg.contains(&name)
                && msg.contains("while open"),
            "{msg}"
        );
    };
    named(c.verify().unwrap_err());
    let before = wal_bytes(&dir);
    c.add(item(100)).unwrap();
    named(c.commit().unwrap_err());
    assert_eq!(wal_bytes(&dir), before, "a record reached the log");
}

/// Bytes in a collection's write-ahead logs.
fn wal_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("wal-"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}
