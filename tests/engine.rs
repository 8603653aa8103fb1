//! The `Engine` facade end to end with the tiny committed bundles: create,
//! index, add, search by text / image / SMILES / id, classify, embed,
//! delete; write batches that belong to their caller; several threads
//! sharing one engine; errors that name the input.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use weft::bundle::Modality;
use weft::classify::ClassifyOptions;
use weft::store::{CollectionConfig, NewItem};
use weft::{Content, Engine, Error, Item, SearchOptions, SearchQuery};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn engine() -> Engine {
    Engine::builder()
        .project_dir(root().join(".weft"))
        .models_dir(root().join("tests/bundles"))
        .build()
        .unwrap()
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weft-engine-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn unit(i: usize, dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|j| ((i * 7 + j * 3) % 11) as f32 + 1.0)
        .collect()
}

#[test]
fn two_batches_never_see_each_others_items() {
    let dir = temp("batches");
    let engine = Engine::builder().build().unwrap();
    let c = engine
        .create_with_config(&dir, CollectionConfig::new("test", "test", 8))
        .unwrap();
    let start = Arc::new(Barrier::new(2));
    let staged = Arc::new(Barrier::new(2));
    let committed = Arc::new(Barrier::new(2));
    let workers: Vec<_> = (0..2)
        .map(|t| {
            let (c, start, staged, committed) = (
                c.clone(),
                Arc::clone(&start),
                Arc::clone(&staged),
                Arc::clone(&committed),
            );
            std::thread::spawn(move || {
                start.wait();
                let mut b = c.batch();
                for i in 0..50 {
                    b.add_item(NewItem::new(
                        format!("t{t}-{i}"),
                        Modality::Text,
                        unit(i + t, 8),
                    ))
                    .unwrap();
                }
                assert_eq!(b.len(), 50);
                staged.wait();
                // Both batches hold 50 items; nothing is visible yet.
                assert_eq!(c.snapshot().len(), 0);
                if t == 0 {
                    b.commit().unwrap();
                    committed.wait();
                } else {
                    committed.wait();
                    // Thread 0's commit made its items visible, and did not
                    // take this batch's staged items with it.
                    let snap = c.snapshot();
                    assert_eq!(snap.len(), 50);
                    assert!(snap.doc_of("t0-3").unwrap().is_some());
                    assert!(snap.doc_of("t1-3").unwrap().is_none());
                    assert_eq!(b.len(), 50);
                    // A dropped batch discards only its own items.
                    drop(b);
                    assert_eq!(c.snapshot().len(), 50);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let snap = c.snapshot();
    assert_eq!(snap.len(), 50);
    assert!(snap.doc_of("t1-0").unwrap().is_none());

    // The same id staged by two batches: the second commit fails whole.
    let mut a = c.batch();
    let mut b = c.batch();
    a.add_item(NewItem::new("dup", Modality::Text, unit(1, 8)))
        .unwrap();
    b.add_item(NewItem::new("other", Modality::Text, unit(2, 8)))
        .unwrap();
    b.add_item(NewItem::new("dup", Modality::Text, unit(3, 8)))
        .unwrap();
    a.commit().unwrap();
    let err = b.commit().unwrap_err();
    assert!(
        matches!(&err, Error::DuplicateId { id } if id == "dup"),
        "{err}"
    );
    assert!(c.snapshot().doc_of("other").unwrap().is_none());
    // Deletes and payloads through a batch.
    let mut d = c.batch();
    assert!(d.delete("t0-1").unwrap());
    assert!(!d.delete("t1-1").unwrap());
    assert!(d
        .set_payload("t0-2", &serde_json::json!({"tag": "x"}))
        .unwrap());
    let stats = d.commit().unwrap();
    assert_eq!((stats.deleted, stats.updated), (1, 1));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn engine_indexes_adds_searches_classifies_and_embeds() {
    let dir = temp("vl");
    let engine = engine();
    let photos = engine.open_or_create(&dir, "tiny-vl").unwrap();
    assert!(Engine::is_collection(&dir));
    let data = root().join("tests/data");
    let report = photos.index(&[&data], |_| {}).unwrap();
    assert_eq!(report.errors.len(), 0, "{:?}", report.errors);
    assert!(report.items_added >= 4, "{report:?}");
    let n = photos.info().items;

    // Text items through the batching encoders, in one commit.
    let stats = photos
        .add(vec![
            Item::new("note-1", "a red square").with_payload(serde_json::json!({"k": 1})),
            Item::new("note-2", "a grey rectangle"),
        ])
        .unwrap();
    assert_eq!(stats.added, 2);
    assert_eq!(photos.info().items, n + 2);

    // One bad input fails the whole add, naming it; nothing is added.
    let err = photos
        .add(vec![
            Item::new("ok", "fine"),
            Item::new(
                "bad",
                Content::ImageBytes {
                    name: "upload 7".into(),
                    bytes: b"not an image".to_vec(),
                },
            ),
        ])
        .unwrap_err();
    assert!(err.to_string().contains("upload 7"), "{err}");
    assert_eq!(photos.info().items, n + 2);

    // Ids are checked against the batch's own staged changes when staged.
    let mut b = photos.batch();
    b.add(Item::new("note-3", "a blue circle")).unwrap();
    let err = b.add(Item::new("note-3", "again")).unwrap_err();
    assert!(
        matches!(&err, Error::DuplicateId { id } if id == "note-3"),
        "{err}"
    );
    let err = b
        .add_all(vec![Item::new("x", "one"), Item::new("x", "two")])
        .unwrap_err();
    assert!(matches!(&err, Error::DuplicateId { .. }), "{err}");
    assert!(b.delete("note-2").unwrap());
    b.add(Item::new("note-2", "a grey rectangle, again"))
        .unwrap();
    assert_eq!(b.len(), 3);
    let stats = b.commit().unwrap();
    assert_eq!((stats.added, stats.deleted), (2, 1));
    assert_eq!(photos.info().items, n + 3);
    assert_eq!(photos.delete(&["note-3"]).unwrap(), 1);

    // Search by text, by image, by id (the item itself left out).
    let opts = SearchOptions::default().with_k(3);
    let hits = photos.search("a red square", &opts).unwrap();
    assert_eq!(hits.len(), 3);
    let img = data.join("rgb_64x48.png");
    let hits = photos
        .search(SearchQuery::Content(Content::ImagePath(img.clone())), &opts)
        .unwrap();
    assert!(hits[0].id.ends_with("rgb_64x48.png"), "{:?}", hits[0].id);
    let hits = photos
        .search(SearchQuery::Id("note-1".into()), &opts)
        .unwrap();
    assert!(hits.iter().all(|h| h.id != "note-1"));
    let err = photos
        .search(SearchQuery::Id("nope".into()), &opts)
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    // Embeddings and zero-shot.
    let bundle = engine.bundle("tiny-vl").unwrap();
    let e = engine
        .embed_one(&bundle, Content::ImagePath(img.clone()))
        .unwrap();
    assert_eq!(e.embedding.len(), bundle.dim());
    let labels = vec!["red".to_string(), "grey".to_string()];
    let c = photos
        .classify(
            Content::ImagePath(img),
            &labels,
            &ClassifyOptions::default(),
        )
        .unwrap();
    assert_eq!(c.labels.len(), 2);

    // Deletes, then the collection reopens with everything.
    assert_eq!(photos.delete(&["note-2", "missing"]).unwrap(), 1);
    drop(photos);
    let again = engine.open_or_create(&dir, "tiny-vl").unwrap();
    assert_eq!(again.info().items, n + 1);
    // A collection refuses another bundle.
    drop(again);
    let err = engine.open_or_create(&dir, "tiny-mol").unwrap_err();
    assert!(matches!(err, Error::BundleMismatch { .. }), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn molecule_queries_keep_their_smiles() {
    let dir = temp("mol");
    let engine = engine();
    let mols = engine.open_or_create(&dir, "tiny-mol").unwrap();
    mols.add(vec![
        Item::new("ethanol", Content::Smiles("CCO".into())),
        Item::new("benzene", Content::Smiles("c1ccccc1".into())),
        Item::new("phenol", Content::Smiles("c1ccccc1O".into())),
    ])
    .unwrap();
    let opts = SearchOptions::default()
        .with_k(3)
        .with_scorer("motif".parse().unwrap());
    // The motif scorer needs the query's SMILES: the engine keeps it.
    let hits = mols
        .search(
            SearchQuery::Content(Content::Smiles("c1ccccc1O".into())),
            &opts,
        )
        .unwrap();
    assert_eq!(hits.len(), 3);
    // The same SMILES again comes from the query cache, with the same hits.
    let before = engine.query_cache_stats();
    let again = mols
        .search(
            SearchQuery::Content(Content::Smiles("c1ccccc1O".into())),
            &opts,
        )
        .unwrap();
    assert_eq!(again, hits);
    assert_eq!(engine.query_cache_stats().hits, before.hits + 1);
    // A text query reads the items' SMILES, which `add` keeps in the
    // payload as `index` does (beside the caller's own fields).
    mols.add(vec![Item::new(
        "toluene",
        Content::Smiles("Cc1ccccc1".into()),
    )
    .with_payload(serde_json::json!({"name": "toluene"}))])
        .unwrap();
    let hits = mols
        .search("an aromatic ring", &opts.clone().with_k(4))
        .unwrap();
    assert_eq!(hits.len(), 4);
    let toluene = hits.iter().find(|h| h.id == "toluene").unwrap();
    assert_eq!(
        toluene.payload,
        serde_json::json!({"name": "toluene", "smiles": "Cc1ccccc1"})
    );
    // A bad item is named by its id, with its SMILES.
    let err = mols
        .add(vec![
            Item::new("fine", Content::Smiles("CC".into())),
            Item::new("bad", Content::Smiles("C1CC((((".into())),
        ])
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("item `bad` (\"C1CC((((\")") && msg.contains("SMILES"),
        "{msg}"
    );
    let err = mols
        .search(SearchQuery::Content(Content::Smiles("C1CC(".into())), &opts)
        .unwrap_err();
    assert!(err.to_string().contains("C1CC("), "{err}");
    // A failed query is not cached: it fails again, and counts as no hit.
    let stats = engine.query_cache_stats();
    assert!(mols
        .search(SearchQuery::Content(Content::Smiles("C1CC(".into())), &opts)
        .is_err());
    assert_eq!(engine.query_cache_stats(), stats);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn threads_share_one_engine_and_its_batcher() {
    let engine = engine();
    let bundle = engine.bundle("tiny-vl").unwrap();
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let (engine, bundle) = (engine.clone(), bundle.clone());
            std::thread::spawn(move || {
                for i in 0..10 {
                    let e = engine
                        .embed_one(&bundle, format!("thread {t} text {i}"))
                        .unwrap();
                    assert_eq!(e.embedding.len(), bundle.dim());
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let stats = engine.batch_stats();
    assert_eq!(stats.items.load(std::sync::atomic::Ordering::Relaxed), 40);
}

#[test]
fn the_library_never_walks_up_for_the_runtime_or_bundles() {
    // From a folder below the project, with no project folder given, the
    // bundles of the project's .weft are not found.
    let engine = Engine::builder().build().unwrap();
    if std::env::var_os("WEFT_MODELS").is_none() {
        let err = engine.bundle("starter-vl").unwrap_err();
        assert!(matches!(err, Error::BundleNotFound { .. }), "{err}");
    }
    assert!(!Engine::is_collection(Path::new("tests/data")));
}

/// Threads of this process whose name starts with `weft-` (the batcher's
/// lanes are named `weft-text-BUNDLE` and `weft-image-BUNDLE`).
fn batcher_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|n| n.starts_with("weft-"))
        })
        .count()
}

#[test]
fn batcher_threads_end_with_the_engine() {
    let engine = engine();
    let bundle = engine.bundle("tiny-vl").unwrap();
    engine.embed_one(&bundle, "start the lanes").unwrap();
    assert!(batcher_threads() >= 2);
    drop(bundle);
    drop(engine);
    // Other tests of this binary run engines too: wait until every one is
    // gone. A lane that outlived its engine would keep this from reaching 0.
    let start = std::time::Instant::now();
    while batcher_threads() > 0 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "{} batcher threads still running",
            batcher_threads()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_repeated_query_text_comes_from_the_query_cache() {
    let dir = temp("qcache");
    let engine = engine();
    let photos = engine.open_or_create(&dir, "tiny-vl").unwrap();
    photos.index(&[root().join("tests/data")], |_| {}).unwrap();
    let opts = SearchOptions::default();
    let first = photos.search("a red square", &opts).unwrap();
    let s = engine.query_cache_stats();
    assert_eq!((s.hits, s.misses, s.entries), (0, 1, 1), "{s:?}");
    let again = photos.search("a red square", &opts).unwrap();
    assert_eq!(first, again);
    let s = engine.query_cache_stats();
    assert_eq!((s.hits, s.misses), (1, 1), "{s:?}");
    assert!(s.bytes > 0);
    // A different text, and an image (never cached), are encoded.
    photos.search("a blue circle", &opts).unwrap();
    photos
        .search(
            Content::from(root().join("tests/data/rgb_64x48.png")),
            &opts,
        )
        .unwrap();
    let s = engine.query_cache_stats();
    assert_eq!((s.hits, s.misses, s.entries), (1, 2, 2), "{s:?}");

    // Capacity 0 turns it off.
    let off = Engine::builder()
        .project_dir(root().join(".weft"))
        .models_dir(root().join("tests/bundles"))
        .query_cache_bytes(0)
        .build()
        .unwrap();
    let c = off.open_read_only(&dir).unwrap();
    let a = c.search("a red square", &opts).unwrap();
    let b = c.search("a red square", &opts).unwrap();
    assert_eq!(a, b);
    let s = off.query_cache_stats();
    assert_eq!((s.hits, s.misses, s.entries), (0, 2, 0), "{s:?}");
}
