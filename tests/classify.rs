//! Zero-shot classification: validation, the label cache, photos, bulk tagging.

use std::path::PathBuf;
use std::sync::Arc;

use weft::bundle::{Bundle, Modality};
use weft::classify::{
    tag_collection, Classifier, ClassifyOptions, LabelCache, MultiLabel, TagOptions, TAGS_KEY,
};
use weft::encoder::{BundleEncoders, EncoderOptions, Input};
use weft::runtime::{Runtime, RuntimeOptions};
use weft::search::Query;
use weft::store::{Collection, CollectionConfig};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn classifier(bundle: &std::path::Path) -> Classifier {
    let runtime = Runtime::load(&RuntimeOptions::default().with_project_dir(".weft")).unwrap();
    let bundle = Bundle::open(bundle).unwrap();
    Classifier::new(BundleEncoders::new(runtime, bundle, EncoderOptions::default()).unwrap())
}

fn labels(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn bad_labels_and_templates_are_clear_errors() {
    let mut c = classifier(&root().join("tests/bundles/tiny-vl"));
    let img = root().join("tests/data/rgb_64x48.png");
    let o = ClassifyOptions::default();
    let err = |r: weft::Result<_>| {
        r.map(|_: weft::classify::Classification| ())
            .unwrap_err()
            .to_string()
    };
    assert!(err(c.classify(Input::ImagePath(&img), &[], &o)).contains("empty"));
    assert!(
        err(c.classify(Input::ImagePath(&img), &labels(&["cat", "Cat "]), &o))
            .contains("duplicate label")
    );
    assert!(
        err(c.classify(Input::ImagePath(&img), &labels(&["cat", " "]), &o))
            .contains("label is empty")
    );
    let t = o.clone().with_templates(vec!["a photo".into()]);
    assert!(err(c.classify(Input::ImagePath(&img), &labels(&["cat"]), &t)).contains("placeholder"));
    let ok = c
        .classify(Input::ImagePath(&img), &labels(&["cat", "dog", "car"]), &o)
        .unwrap();
    let total: f32 = ok.labels.iter().map(|l| l.probability).sum();
    assert!((total - 1.0).abs() < 1e-4);
    // abstain: a threshold above any probability gives "none of these"
    let a = c
        .classify(
            Input::ImagePath(&img),
            &labels(&["cat", "dog", "car"]),
            &o.clone().with_abstain_below(Some(1.1)),
        )
        .unwrap();
    assert!(a.best.is_none());
}

#[test]
fn the_cache_skips_text_encoding_for_repeated_labels() {
    let mut c = classifier(&root().join("tests/bundles/tiny-vl"));
    let many: Vec<String> = (0..1000).map(|i| format!("label number {i}")).collect();
    let img = root().join("tests/data/rgb_64x48.png");
    let o = ClassifyOptions::default();
    c.classify(Input::ImagePath(&img), &many, &o).unwrap();
    let first = c.cache().stats();
    assert_eq!(first.misses, 1000);
    assert_eq!(first.prompts_encoded, 2000, "2 templates per label");
    let start = std::time::Instant::now();
    let again = c.classify(Input::ImagePath(&img), &many, &o).unwrap();
    let elapsed = start.elapsed();
    let second = c.cache().stats();
    assert_eq!(
        second.prompts_encoded, first.prompts_encoded,
        "second call encoded prompts"
    );
    assert_eq!(second.hits, 1000);
    assert_eq!(again.labels.len(), 5);
    eprintln!("second call with 1000 cached labels (one image encoding + scoring): {elapsed:?}");
    // scoring alone, from an encoded query
    let q = Query::from_encoded(
        c.encoders()
            .encode(&[Input::ImagePath(&img)])
            .remove(0)
            .unwrap(),
    );
    let start = std::time::Instant::now();
    c.classify_query(&q, &many, &o).unwrap();
    eprintln!("scoring 1000 cached labels: {:?}", start.elapsed());
}

#[test]
fn bulk_tagging_matches_per_item_classify_and_resumes() {
    let bundle_dir = root().join("tests/bundles/tiny-vl");
    let mut c = classifier(&bundle_dir);
    let bundle = Bundle::open(&bundle_dir).unwrap();
    let dir = std::env::temp_dir().join(format!("weft-tag-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let coll = Collection::create(&dir, CollectionConfig::for_bundle(&bundle)).unwrap();
    let files = [
        "rgb_64x48.png",
        "alpha_40x40.png",
        "grey_30x50.png",
        "exif_rot6_64x48.jpg",
    ];
    for f in files {
        let p = root().join("tests/data").join(f);
        let e = c
            .encoders()
            .encode(&[Input::ImagePath(&p)])
            .remove(0)
            .unwrap();
        coll.add(
            e.into_item(f, Modality::Image)
                .with_payload(serde_json::json!({"file": f})),
        )
        .unwrap();
    }
    coll.commit().unwrap();
    let labs = labels(&["red", "green", "blue", "grey", "white"]);
    let opts = TagOptions::default()
        .with_classify(ClassifyOptions::default().with_top_k(2))
        .with_write(true)
        .with_commit_every(3);
    let report = tag_collection(&mut c, &coll, &labs, &opts, |_, _, _, _| {}).unwrap();
    assert_eq!((report.tagged, report.skipped, report.total), (4, 0, 4));
    let snap = coll.snapshot();
    for f in files {
        let doc = snap.doc_of(f).unwrap().unwrap();
        let payload: serde_json::Value =
            serde_json::from_str(&snap.meta(doc).unwrap().payload).unwrap();
        assert_eq!(payload["file"], f, "payload kept");
        let (q, _) = Query::from_item(&snap, f).unwrap();
        let direct = c.classify_query(&q, &labs, &opts.classify).unwrap();
        let want: Vec<&str> = direct.labels.iter().map(|l| l.label.as_str()).collect();
        let got: Vec<&str> = payload[TAGS_KEY]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(got, want, "{f}");
    }
    // resuming: everything is skipped, nothing is encoded again
    let again = tag_collection(&mut c, &coll, &labs, &opts, |_, _, _, _| {}).unwrap();
    assert_eq!((again.tagged, again.skipped), (0, 4));
    // multi-label mode writes the labels over their thresholds
    let ml = MultiLabel {
        default_threshold: -1.0,
        ..Default::default()
    };
    let multi = TagOptions::default()
        .with_classify(ClassifyOptions::default().with_multi_label(Some(ml)))
        .with_write(true);
    tag_collection(&mut c, &coll, &labs, &multi, |_, _, _, _| {}).unwrap();
    let snap = coll.snapshot();
    let doc = snap.doc_of("grey_30x50.png").unwrap().unwrap();
    let payload: serde_json::Value =
        serde_json::from_str(&snap.meta(doc).unwrap().payload).unwrap();
    assert_eq!(payload[TAGS_KEY].as_array().unwrap().len(), 5);
}

fn starter() -> Option<PathBuf> {
    let dir = root().join(".weft/models/starter-vl");
    if dir.join("bundle.toml").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("WEFT_REQUIRE_STARTER").is_none(),
        "starter-vl missing: run models/build.sh"
    );
    eprintln!("SKIPPED: starter-vl not built (models/build.sh)");
    None
}

#[test]
fn starter_classifies_the_cat_and_the_coffee() {
    let Some(dir) = starter() else { return };
    let mut c = classifier(&dir);
    let labs = labels(&["cat", "dog", "car", "cup of coffee", "rocket"]);
    let photos = root().join(".weft/data/photos");
    for (file, want) in [
        ("chelsea.png", "cat"),
        ("coffee.png", "cup of coffee"),
        ("rocket.jpg", "rocket"),
    ] {
        let p = photos.join(file);
        let r = c
            .classify(Input::ImagePath(&p), &labs, &ClassifyOptions::default())
            .unwrap();
        assert_eq!(r.best.as_deref(), Some(want), "{file}: {:?}", r.labels);
    }
    // accuracy over every captioned photo: captions as the label set
    let captions = std::fs::read_to_string(photos.join("captions.tsv")).unwrap();
    let pairs: Vec<(String, String)> = captions
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(f, cap)| (f.to_string(), cap.to_string()))
        .collect();
    let caps: Vec<String> = pairs.iter().map(|(_, c)| c.clone()).collect();
    let plain = ClassifyOptions::default().with_templates(vec!["{}".into()]);
    let right = pairs
        .iter()
        .filter(|(f, cap)| {
            let p = photos.join(f);
            c.classify(Input::ImagePath(&p), &caps, &plain)
                .unwrap()
                .best
                .as_deref()
                == Some(cap.as_str())
        })
        .count();
    eprintln!(
        "zero-shot accuracy over {} captioned photos (captions as labels): {right}/{}",
        pairs.len(),
        pairs.len()
    );
    assert!(right * 2 > pairs.len(), "{right}/{}", pairs.len());
}

#[test]
fn the_label_cache_is_bounded_and_drops_the_least_recently_used() {
    let runtime = Runtime::load(&RuntimeOptions::default().with_project_dir(".weft")).unwrap();
    let bundle = Bundle::open(root().join("tests/bundles/tiny-vl")).unwrap();
    let encoders = BundleEncoders::new(runtime, bundle, EncoderOptions::default()).unwrap();
    // Room for a few labels only.
    let cache = Arc::new(LabelCache::with_capacity_bytes(10 << 10));
    let mut c = Classifier::with_cache(encoders, Arc::clone(&cache));
    let img = root().join("tests/data/rgb_64x48.png");
    let o = ClassifyOptions::default();
    let keep = vec!["a cat".to_string(), "a dog".to_string()];
    for round in 0..50 {
        let fresh: Vec<String> = (0..3).map(|i| format!("long label {round} {i}")).collect();
        c.classify(Input::ImagePath(&img), &fresh, &o).unwrap();
        c.classify(Input::ImagePath(&img), &keep, &o).unwrap();
        let s = cache.stats();
        assert!(s.bytes <= 10 << 10, "round {round}: {s:?}");
    }
    let s = cache.stats();
    assert!(s.evictions >= 140, "{s:?}");
    // The labels used every round stayed: after the first round, hits.
    assert!(s.hits >= 98, "{s:?}");
}
