//! Bounded fuzzing of the daemon's request bodies, over real HTTP: valid
//! seed bodies for every POST endpoint, mutated structurally (a field
//! removed, replaced by a value of another type or an extreme one, an
//! unknown field added) and byte by byte (flips, cuts, splices). Passes when
//! no request gets a 5xx or kills the connection, every error is JSON with
//! a code, and the daemon still answers correctly at the end.
//! `WEFT_FUZZ_CASES_SCALE` scales the number of cases; `WEFT_FUZZ_SECS`
//! runs for that many seconds instead (`scripts/fuzz.sh SECS http`).

use serde_json::{json, Value};

mod common;

use common::{b64, call, cases, mutate, post, temp, Rng, Server, ROOT};

/// (path, body): one valid request per endpoint and input kind.
fn seeds() -> Vec<(&'static str, Value)> {
    let png = b64("rgb_64x48.png");
    let file = format!("{ROOT}/tests/data/rgb_64x48.png");
    vec![
        (
            "/collections",
            json!({"name": "fz2", "bundle": "tiny-vl", "token_dtype": "f16", "m": 8, "ef_construction": 40, "ef_search": 32}),
        ),
        (
            "/collections/fz/items",
            json!({"items": [
                {"id": "t1", "text": "a red bicycle", "payload": {"kind": "text", "n": 1}},
                {"id": "i1", "image_base64": png, "payload": {"kind": "photo", "tags": ["a", "b"]}},
                {"id": "p1", "path": file}
            ], "upsert": true}),
        ),
        (
            "/collections/fz/search",
            json!({"text": "a bicycle", "k": 5, "scorer": "filip", "filter": {"kind": "photo", "n": {"gte": 0}}, "explain": true}),
        ),
        (
            "/collections/fz/search",
            json!({"image_base64": png, "k": 3, "scorer": "global"}),
        ),
        ("/collections/fz/search", json!({"id": "t1", "k": 2})),
        (
            "/collections/fz/search",
            json!({"vector": vec![0.1f32; 32], "tokens": vec![vec![0.2f32; 32]; 2], "k": 2, "scorer": "filip"}),
        ),
        (
            "/classify",
            json!({"text": "a cat", "labels": ["cat", "dog"], "templates": ["a photo of {}"], "top_k": 2, "abstain": 0.1}),
        ),
        (
            "/classify",
            json!({"image_base64": png, "labels": ["red", "green", "blue"], "multi_label": 0.5, "bundle": "tiny-vl"}),
        ),
        (
            "/embed",
            json!({"inputs": [{"text": "hello"}, {"image_base64": png}, {"path": file}]}),
        ),
        ("/collections/fz/compact", json!({})),
    ]
}

/// A value of some type, often an extreme one.
fn odd_value(rng: &mut Rng) -> Value {
    match rng.below(16) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(-1),
        3 => json!(0),
        4 => json!(u64::MAX),
        5 => json!(i64::MIN),
        6 => json!(1e308),
        7 => json!(-0.0),
        8 => json!(""),
        9 => json!("x".repeat(1 + rng.below(5000))),
        10 => json!("../../etc/passwd"),
        11 => json!("\u{0}\u{ffff}é😀"),
        12 => json!([]),
        13 => json!({}),
        14 => json!([[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]),
        _ => json!(["a", 1, null, {"b": [2]}]),
    }
}

/// Replaces, removes or adds at one random place in `v`.
fn mutate_json(rng: &mut Rng, v: &mut Value, depth: usize) {
    match v {
        Value::Object(map) if !map.is_empty() && (depth < 4 && rng.below(3) != 0) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = &keys[rng.below(keys.len())];
            match rng.below(5) {
                0 => {
                    map.remove(key);
                }
                1 => {
                    map.insert(format!("unknown_{}", rng.below(3)), odd_value(rng));
                }
                2 => {
                    map.insert(key.clone(), odd_value(rng));
                }
                _ => mutate_json(rng, map.get_mut(key).unwrap(), depth + 1),
            }
        }
        Value::Array(items) if !items.is_empty() && depth < 4 && rng.below(3) != 0 => {
            let i = rng.below(items.len());
            match rng.below(4) {
                0 => {
                    items.remove(i);
                }
                1 => {
                    let copy = items[i].clone();
                    for _ in 0..1 + rng.below(40) {
                        items.push(copy.clone());
                    }
                }
                _ => mutate_json(rng, &mut items[i], depth + 1),
            }
        }
        _ => *v = odd_value(rng),
    }
}

#[test]
fn mutated_request_bodies_get_4xx_json_never_a_5xx_or_a_crash() {
    let dir = temp("http-fuzz");
    let mut srv = Server::start(
        &dir,
        &[
            "--max-body-bytes",
            "2000000",
            "--max-labels",
            "64",
            "--max-request-pixels",
            "4000000",
        ],
    );
    let a = srv.addr.clone();
    let (s, v) = post(&a, "/collections", json!({"name": "fz"}));
    assert_eq!(s, 201, "{v}");
    for (path, body) in seeds() {
        let (s, v) = post(&a, path, &body);
        assert!(s < 300, "seed {path}: {s} {v}");
    }
    let seeds = seeds();
    let mut rng = Rng(0x5eed_f00d_0bad_cafe);
    let secs: Option<u64> = std::env::var("WEFT_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok());
    let start = std::time::Instant::now();
    let n = cases(3000);
    let more = |case: usize| match secs {
        Some(s) => start.elapsed().as_secs() < s,
        None => case < n,
    };
    let mut by_status: std::collections::BTreeMap<u16, usize> = Default::default();
    let mut case = 0;
    while more(case) {
        case += 1;
        let (path, seed) = &seeds[rng.below(seeds.len())];
        let body: Vec<u8> = if rng.below(3) == 0 {
            mutate(&mut rng, seed.to_string().as_bytes())
        } else {
            let mut v = seed.clone();
            for _ in 0..1 + rng.below(3) {
                mutate_json(&mut rng, &mut v, 0);
            }
            v.to_string().into_bytes()
        };
        // Collections are created and dropped under fuzzed names too.
        let (s, v) = call(&a, "POST", path, Some(&body), None);
        *by_status.entry(s).or_default() += 1;
        let shown = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        assert!(
            (200..500).contains(&s),
            "case {case}: POST {path} {shown}\n-> {s} {v}"
        );
        if s >= 400 {
            assert!(
                v["error"]["code"].is_string() && v["error"]["message"].is_string(),
                "case {case}: POST {path} {shown}\n-> {s} without a JSON error: {v}"
            );
        }
        if case % 97 == 0 {
            assert!(srv.alive(), "case {case}: the daemon died");
        }
    }
    eprintln!(
        "{case} mutated request bodies in {:.0} s, by status: {by_status:?}",
        start.elapsed().as_secs_f64()
    );
    // Still whole: a valid search answers, and the collection verifies.
    let (s, v) = post(
        &a,
        "/collections/fz/search",
        json!({"text": "a red bicycle", "k": 3}),
    );
    assert_eq!(s, 200, "{v}");
    assert!(!v["hits"].as_array().unwrap().is_empty(), "{v}");
    let status = srv.stop();
    assert!(status.success(), "{status:?}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("--collections-dir")
        .arg(&dir)
        .args(["collections", "verify", "fz"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
