//! Search pipeline through the public API: ANN + re-rank against exhaustive
//! late interaction, filters, scorer errors, explanations.

use std::path::PathBuf;

use weft::bundle::Modality;
use weft::search::{
    search, Candidates, Direction, Filter, Query, Scorer, SearchOptions, SearchScratch,
};
use weft::store::{Collection, CollectionConfig, NewItem, TokenDtype};

const DIM: usize = 32;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn unit(&mut self, around: Option<&[f32]>, noise: f32) -> Vec<f32> {
        let mut v: Vec<f32> = (0..DIM)
            .map(|i| around.map_or(0.0, |c| c[i]) + noise * self.f())
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        v
    }
}

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-search-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `n` items in 30 topics: embedding near the topic centre, 8 tokens near it too.
fn build(tag: &str, n: usize, seed: u64, dtype: TokenDtype) -> (Collection, Vec<Vec<f32>>) {
    let mut rng = Rng(seed);
    let topics: Vec<Vec<f32>> = (0..30).map(|_| rng.unit(None, 1.0)).collect();
    let c = Collection::create(
        tempdir(tag),
        CollectionConfig::new("t", "h", DIM)
            .with_token_dtype(dtype)
            .with_checkpoint_items(1000),
    )
    .unwrap();
    for i in 0..n {
        let t = &topics[i % topics.len()];
        let tokens: Vec<f32> = (0..8).flat_map(|_| rng.unit(Some(t), 0.45)).collect();
        let emb = mean_pool(&tokens);
        let item = NewItem::new(format!("i{i}"), Modality::Image, emb)
            .with_tokens(tokens, Some([2, 4]))
            .with_payload(serde_json::json!({ "topic": i % 30, "rare": i % 97 == 0, "n": i }));
        c.add(item).unwrap();
    }
    c.commit().unwrap();
    (c, topics)
}

/// The global embedding as the encoders make it: the normalised mean of the tokens.
fn mean_pool(tokens: &[f32]) -> Vec<f32> {
    let mut m = [0f32; DIM];
    for row in tokens.chunks_exact(DIM) {
        m.iter_mut().zip(row).for_each(|(a, b)| *a += b);
    }
    let n = m.iter().map(|x| x * x).sum::<f32>().sqrt();
    m.iter().map(|x| x / n).collect()
}

fn query(rng: &mut Rng, topic: &[f32]) -> Query {
    let tokens: Vec<f32> = (0..5).flat_map(|_| rng.unit(Some(topic), 0.45)).collect();
    Query::new(mean_pool(&tokens), tokens)
}

#[test]
fn ann_plus_rerank_recovers_the_exhaustive_late_interaction_top_10() {
    let seed = 77;
    for dtype in [TokenDtype::F32, TokenDtype::Bf16, TokenDtype::I8] {
        let (c, topics) = build(&format!("rerank-{dtype:?}"), 6000, seed, dtype);
        let snap = c.snapshot();
        let mut rng = Rng(seed ^ 9);
        let mut scratch = SearchScratch::new();
        let mut overlap = 0;
        let queries = 40;
        for qi in 0..queries {
            let q = query(&mut rng, &topics[qi % 30]);
            let scorer = Scorer::Filip(Direction::QueryToItem);
            let exact = search(
                &snap,
                &q,
                &SearchOptions::default()
                    .with_scorer(scorer)
                    .with_candidates(Candidates::Exact),
                &mut scratch,
            )
            .unwrap();
            let ann = search(
                &snap,
                &q,
                &SearchOptions::default()
                    .with_scorer(scorer)
                    .with_exact_below(0)
                    .with_candidates(Candidates::Oversample(20)),
                &mut scratch,
            )
            .unwrap();
            assert_eq!(ann.len(), 10);
            // A per-query ef below k is raised to k: still k results.
            let narrow = SearchOptions::default()
                .with_scorer(scorer)
                .with_exact_below(0)
                .with_ef(Some(2));
            assert_eq!(search(&snap, &q, &narrow, &mut scratch).unwrap().len(), 10);
            overlap += ann
                .iter()
                .filter(|h| exact.iter().any(|e| e.doc == h.doc))
                .count();
        }
        let ratio = overlap as f64 / (10.0 * queries as f64);
        eprintln!("{dtype:?}: ANN + FILIP re-rank keeps {ratio:.3} of the exhaustive top-10 (seed {seed})");
        assert!(ratio >= 0.95, "seed {seed} {dtype:?}: {ratio}");
    }
}

#[test]
fn a_filtered_query_returns_k_results_when_k_match() {
    let (c, topics) = build("filter", 3000, 5, TokenDtype::F16);
    let snap = c.snapshot();
    let mut rng = Rng(1);
    let mut scratch = SearchScratch::new();
    // 31 items have rare = true (i % 97 == 0), spread over topics unrelated to the query.
    let filter = Filter::parse(r#"{"rare": true}"#).unwrap();
    for scorer in [Scorer::Global, Scorer::MaxSim] {
        let q = query(&mut rng, &topics[3]);
        let opts = SearchOptions::default()
            .with_k(10)
            .with_scorer(scorer)
            .with_exact_below(0)
            .with_filter(Some(filter.clone()));
        let hits = search(&snap, &q, &opts, &mut scratch).unwrap();
        assert_eq!(hits.len(), 10, "{scorer:?}");
        assert!(hits.iter().all(|h| h.payload["rare"] == true));
    }
    // ranges and membership too
    let f = Filter::parse(r#"{"n": {"gte": 100, "lt": 130}, "topic": {"in": [1, 2]}}"#).unwrap();
    let q = query(&mut rng, &topics[0]);
    let hits = search(
        &snap,
        &q,
        &SearchOptions::default()
            .with_k(50)
            .with_exact_below(0)
            .with_filter(Some(f)),
        &mut scratch,
    )
    .unwrap();
    assert_eq!(hits.len(), 2, "items 121 and 122 match"); // 121 % 30 = 1, 122 % 30 = 2
}

#[test]
fn late_interaction_without_tokens_is_an_error_not_a_fallback() {
    let (c, topics) = build("notokens", 50, 3, TokenDtype::F32);
    let snap = c.snapshot();
    let q = Query::new(topics[0].clone(), Vec::new());
    let mut scratch = SearchScratch::new();
    let err = search(
        &snap,
        &q,
        &SearchOptions::default().with_scorer(Scorer::MaxSim),
        &mut scratch,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("late interaction unavailable"),
        "{err}"
    );
    // global works without tokens
    assert_eq!(
        search(&snap, &q, &SearchOptions::default(), &mut scratch)
            .unwrap()
            .len(),
        10
    );
    // items without tokens
    let c2 =
        Collection::create(tempdir("notokens2"), CollectionConfig::new("t", "h", DIM)).unwrap();
    c2.add(NewItem::new("bare", Modality::Text, topics[0].clone()))
        .unwrap();
    c2.commit().unwrap();
    let q = Query::new(topics[0].clone(), topics[0].clone());
    let err = search(
        &c2.snapshot(),
        &q,
        &SearchOptions::default().with_scorer(Scorer::Filip(Direction::Symmetric)),
        &mut scratch,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("bare") && err.to_string().contains("no token matrix"),
        "{err}"
    );
}

#[test]
fn explanations_give_patch_positions_and_search_by_id_excludes_the_item() {
    let (c, _) = build("explain", 200, 11, TokenDtype::F32);
    let snap = c.snapshot();
    let (q, doc) = Query::from_item(&snap, "i7").unwrap();
    let mut scratch = SearchScratch::new();
    let hits = search(
        &snap,
        &q,
        &SearchOptions::default()
            .with_scorer(Scorer::Hybrid { weight: 0.3 })
            .with_explain(true)
            .with_exclude(Some(doc)),
        &mut scratch,
    )
    .unwrap();
    assert!(hits.iter().all(|h| h.id != "i7"));
    assert_eq!(hits[0].payload["topic"], 7, "nearest items share the topic");
    let ex = hits[0].explanation.as_ref().unwrap();
    assert_eq!(ex.len(), 8, "one match per query token");
    for m in ex {
        let [r, col] = m.patch.unwrap();
        assert!(r < 2 && col < 4);
        assert_eq!(r * 4 + col, m.item_token);
    }
    let err = Query::from_item(&snap, "nope").unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn motif_scoring_needs_a_molecule_and_valid_weights() {
    let (c, topics) = build("motif", 30, 4, TokenDtype::F32);
    let snap = c.snapshot();
    let mut scratch = SearchScratch::new();
    let q = Query::new(topics[0].clone(), topics[0].clone());
    let err = search(
        &snap,
        &q,
        &SearchOptions::default().with_scorer(Scorer::MotifOt { epsilon: 0.05 }),
        &mut scratch,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("needs a molecule"), "{err}");
    for bad in [
        Scorer::MotifOt { epsilon: 0.0 },
        Scorer::MultiGrained {
            global: -1.0,
            token: 0.0,
            motif: 0.0,
        },
        Scorer::MultiGrained {
            global: 3e38,
            token: 3e38,
            motif: 1.0,
        },
    ] {
        assert!(search(
            &snap,
            &q,
            &SearchOptions::default().with_scorer(bad),
            &mut scratch
        )
        .is_err());
    }
    assert!("multi".parse::<Scorer>().is_ok() && "motif".parse::<Scorer>().is_ok());
    assert_eq!(
        "multi:0.5, 0.3,0.2".parse::<Scorer>().unwrap(),
        Scorer::MultiGrained {
            global: 0.5,
            token: 0.3,
            motif: 0.2
        }
    );
    assert_eq!(
        "multi:0,0,1".parse::<Scorer>().unwrap(),
        Scorer::MultiGrained {
            global: 0.0,
            token: 0.0,
            motif: 1.0
        }
    );
    for bad in [
        "multi:",
        "multi:1,2",
        "multi:1,2,3,4",
        "multi:0,0,0",
        "multi:-1,1,1",
        "multi:a,1,1",
        "multi:NaN,1,1",
        "multi:inf,1,1",
        "multi:3e38,3e38,1",
    ] {
        let err = bad.parse::<Scorer>().unwrap_err().to_string();
        assert!(err.contains(bad), "{bad}: {err}");
    }
}

#[test]
fn tombstones_and_exclude_never_cut_results_below_k() {
    let (c, topics) = build("tombstones", 400, 11, TokenDtype::F32);
    // Delete nine of every ten items, without compaction: the graph still
    // holds them, and a narrow walk meets mostly tombstones.
    for i in 0..400 {
        if i % 10 != 0 {
            c.delete(&format!("i{i}")).unwrap();
        }
    }
    c.commit().unwrap();
    let snap = c.snapshot();
    assert_eq!(snap.len(), 40);
    let mut short = 0;
    let mut rng = Rng(5);
    let mut scratch = SearchScratch::new();
    for (t, topic) in topics.iter().take(10).enumerate() {
        let q = query(&mut rng, topic);
        let keep = snap.doc_of("i0").unwrap();
        let opts = SearchOptions::default()
            .with_k(20)
            .with_exact_below(0)
            .with_ef(Some(1))
            .with_candidates(Candidates::Depth(20))
            .with_exclude(keep);
        let ann = snap
            .ann_ef(&q.embedding, 20, 1, Some(&|d| Some(d) != keep))
            .unwrap();
        short += usize::from(ann.len() < 20);
        let hits = search(&snap, &q, &opts, &mut scratch).unwrap();
        assert_eq!(hits.len(), 20, "topic {t}");
        assert!(hits.iter().all(|h| Some(h.doc) != keep));
        assert!(hits
            .iter()
            .all(|h| h.id.trim_start_matches('i').parse::<usize>().unwrap() % 10 == 0));
    }
    eprintln!("the graph walk alone came back short for {short} of 10 queries");
}

/// Hundreds of identical embeddings (copies of one photo) split the HNSW
/// graph: the neighbour heuristic keeps one copy per list, so a walk reaches
/// a handful of nodes. With tombstones and `exclude` on top, the walk comes
/// back short and the exact scan must make up the k results.
#[test]
fn a_graph_walk_cut_short_by_tombstones_and_exclude_still_gives_k_results() {
    let c = Collection::create(
        tempdir("short-walk"),
        CollectionConfig::new("t", "h", DIM).with_checkpoint_items(10_000),
    )
    .unwrap();
    let mut rng = Rng(17);
    let (a, b) = (rng.unit(None, 1.0), rng.unit(None, 1.0));
    for i in 0..800 {
        let v = if i % 2 == 0 { a.clone() } else { b.clone() };
        c.add(NewItem::new(format!("d{i}"), Modality::Image, v))
            .unwrap();
    }
    c.commit().unwrap();
    for i in (0..800).step_by(3) {
        c.delete(&format!("d{i}")).unwrap();
    }
    c.commit().unwrap();
    let snap = c.snapshot();
    let keep = snap.doc_of("d1").unwrap();
    let accept = |d| snap.is_live(d) && Some(d) != keep;
    let walked = snap.ann_ef(&a, 50, 50, Some(&accept)).unwrap().len();
    assert!(
        walked < 50,
        "the graph walk found {walked} of 50: this test no longer provokes a short walk"
    );
    let q = Query::new(a.clone(), Vec::new());
    for k in [10, 50, 300] {
        let opts = SearchOptions::default()
            .with_k(k)
            .with_exact_below(0)
            .with_exclude(keep);
        let hits = search(&snap, &q, &opts, &mut SearchScratch::new()).unwrap();
        assert_eq!(hits.len(), k, "k {k}: the walk alone found {walked}");
        assert!(hits
            .iter()
            .all(|h| Some(h.doc) != keep && snap.is_live(h.doc)));
        // Copies of `a` first: every one of them ranks above every `b`.
        let a_live = (0..800).filter(|i| i % 2 == 0 && i % 3 != 0).count();
        let a_hits = hits
            .iter()
            .take_while(|h| h.id[1..].parse::<usize>().unwrap() % 2 == 0)
            .count();
        assert_eq!(a_hits, k.min(a_live), "k {k}");
    }
}

#[test]
fn motif_scoring_is_refused_on_a_collection_with_pooled_tokens() {
    let c = Collection::create(
        tempdir("pooled-motif"),
        CollectionConfig::new("t", "h", DIM).with_pool_factor(2.0),
    )
    .unwrap();
    let mut rng = Rng(3);
    let tokens: Vec<f32> = (0..4).flat_map(|_| rng.unit(None, 1.0)).collect();
    c.add(
        NewItem::new("m", Modality::Molecule, mean_pool(&tokens)).with_tokens(tokens.clone(), None),
    )
    .unwrap();
    c.commit().unwrap();
    let q = Query::new(mean_pool(&tokens), tokens);
    for scorer in ["motif", "multi"] {
        let opts = SearchOptions::default().with_scorer(scorer.parse::<Scorer>().unwrap());
        let err = search(&c.snapshot(), &q, &opts, &mut SearchScratch::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("pool_factor"), "{scorer}: {err}");
    }
}
