//! Every import layout through the `weft` binary and the daemon: one
//! `weft models import`, then `models verify`, `doctor`, `index`, `search`
//! (global, filip, hybrid), `classify`, and the same over HTTP.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

mod common;

use common::{b64, post, Server, ROOT};

struct Case {
    fixture: &'static str,
    extra: &'static [&'static str],
    image_tokens: bool,
    sigmoid: bool,
}

const CASES: &[Case] = &[
    Case {
        fixture: "hf-clip",
        extra: &[],
        image_tokens: true,
        sigmoid: false,
    },
    Case {
        fixture: "hf-clip-split",
        extra: &[],
        image_tokens: true,
        sigmoid: false,
    },
    Case {
        fixture: "open-clip",
        extra: &[],
        image_tokens: true,
        sigmoid: false,
    },
    Case {
        fixture: "mobileclip",
        extra: &[],
        image_tokens: false,
        sigmoid: false,
    },
    Case {
        fixture: "immich",
        extra: &["--logit-scale", "100"],
        image_tokens: true,
        sigmoid: false,
    },
    Case {
        fixture: "hf-siglip",
        extra: &[],
        image_tokens: false,
        sigmoid: true,
    },
    Case {
        fixture: "hf-siglip-split",
        extra: &[],
        image_tokens: false,
        sigmoid: true,
    },
];

/// A temporary folder, removed when dropped (also when an assertion fails).
struct Temp(PathBuf);

impl Temp {
    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp(tag: &str) -> Temp {
    let d = std::env::temp_dir().join(format!("weft-import-e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Temp(d)
}

fn weft(models: &Path, collections: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("--models-dir")
        .arg(models)
        .arg("--collections-dir")
        .arg(collections)
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what}: exit {:?}\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn every_layout_imports_indexes_searches_and_classifies_through_the_cli() {
    for case in CASES {
        let name = case.fixture;
        let dir = temp(name);
        let (models, cols) = (dir.join("models"), dir.join("collections"));
        let fixture = format!("{ROOT}/tests/fixtures/import/{name}");
        let mut args = vec!["models", "import", fixture.as_str(), "--name", name];
        args.extend(case.extra);
        let out = ok(&weft(&models, &cols, &args), &format!("{name}: import"));
        assert!(out.contains("where each value came from"), "{out}");
        ok(
            &weft(&models, &cols, &["models", "verify", name]),
            &format!("{name}: verify"),
        );
        let doctor = weft(&models, &cols, &["doctor", "--verify", "--json"]);
        let report: Value = serde_json::from_slice(&doctor.stdout).unwrap();
        let found = report.to_string();
        assert!(
            found.contains(name),
            "{name}: doctor does not list the bundle: {found}"
        );
        assert_eq!(doctor.status.code(), Some(0), "{name}: doctor: {found}");

        let data = format!("{ROOT}/tests/data");
        ok(
            &weft(
                &models,
                &cols,
                &["index", &data, "--collection", "c", "--bundle", name],
            ),
            &format!("{name}: index"),
        );
        for scorer in ["global", "filip", "hybrid"] {
            let out = weft(
                &models,
                &cols,
                &[
                    "search",
                    "a red square",
                    "--collection",
                    "c",
                    "--scorer",
                    scorer,
                    "--json",
                ],
            );
            if scorer != "global" && !case.image_tokens {
                assert_eq!(
                    out.status.code(),
                    Some(4),
                    "{name} {scorer}: a global-only bundle refuses late interaction"
                );
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(err.contains("token"), "{name} {scorer}: {err}");
                continue;
            }
            let stdout = ok(&out, &format!("{name}: search {scorer}"));
            let v: Value = serde_json::from_str(&stdout).unwrap();
            let hits = v.as_array().or_else(|| v["hits"].as_array()).unwrap();
            assert_eq!(hits.len(), 4, "{name} {scorer}: {stdout}");
        }
        let out = ok(
            &weft(
                &models,
                &cols,
                &[
                    "classify",
                    &format!("{data}/rgb_64x48.png"),
                    "--labels",
                    "red,green,blue",
                    "--bundle",
                    name,
                    "--json",
                ],
            ),
            &format!("{name}: classify"),
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        let labels = v["labels"].as_array().unwrap();
        let total: f64 = labels
            .iter()
            .map(|l| l["probability"].as_f64().unwrap())
            .sum();
        if case.sigmoid {
            // Each label's own sigmoid of scale * cosine + bias, from the bundle's manifest.
            let manifest: toml::Value = toml::from_str(
                &std::fs::read_to_string(models.join(name).join("bundle.toml")).unwrap(),
            )
            .unwrap();
            let z = &manifest["zero_shot"];
            let (scale, bias) = (
                z["logit_scale"].as_float().unwrap(),
                z["logit_bias"].as_float().unwrap(),
            );
            for l in labels {
                let s = l["score"].as_f64().unwrap();
                let want = 1.0 / (1.0 + (-(s * scale + bias)).exp());
                let got = l["probability"].as_f64().unwrap();
                assert!(
                    (got - want).abs() < 1e-4,
                    "{name}: sigmoid probability {got}, expected {want}"
                );
            }
        } else {
            assert!(
                (total - 1.0).abs() < 1e-3,
                "{name}: softmax probabilities sum to {total}"
            );
        }
        drop(dir);
    }
}

#[test]
fn every_layout_serves_search_and_classify_over_http() {
    for case in CASES {
        let name = case.fixture;
        let dir = temp(&format!("http-{name}"));
        let (models, cols) = (dir.join("models"), dir.join("collections"));
        let fixture = format!("{ROOT}/tests/fixtures/import/{name}");
        let mut args = vec!["models", "import", fixture.as_str(), "--name", name];
        args.extend(case.extra);
        ok(&weft(&models, &cols, &args), &format!("{name}: import"));
        let srv = Server::start_in(&models, &cols, &["--bundle", name]);
        let a = srv.addr.clone();
        assert_eq!(
            post(&a, "/collections", json!({"name": "c", "bundle": name})).0,
            201,
            "{name}"
        );
        let (s, v) = post(
            &a,
            "/collections/c/items",
            json!({"items": [
                {"id": "red", "image_base64": b64("rgb_64x48.png")},
                {"id": "grey", "image_base64": b64("grey_30x50.png")},
                {"id": "note", "text": "a note about a red car"}
            ]}),
        );
        assert_eq!(s, 200, "{name}: {v}");
        for scorer in ["global", "filip", "hybrid"] {
            let (s, v) = post(
                &a,
                "/collections/c/search",
                json!({"text": "a red square", "k": 3, "scorer": scorer}),
            );
            if scorer != "global" && !case.image_tokens {
                assert_eq!(s, 422, "{name} {scorer}: {v}");
                assert!(
                    v["error"]["message"].as_str().unwrap().contains("token"),
                    "{name} {scorer}: {v}"
                );
                continue;
            }
            assert_eq!(s, 200, "{name} {scorer}: {v}");
            assert!(
                !v["hits"].as_array().unwrap().is_empty(),
                "{name} {scorer}: {v}"
            );
        }
        let (s, v) = post(
            &a,
            "/classify",
            json!({"image_base64": b64("rgb_64x48.png"), "labels": ["red", "blue"], "bundle": name}),
        );
        assert_eq!(s, 200, "{name}: {v}");
        assert_eq!(v["labels"].as_array().unwrap().len(), 2, "{name}: {v}");
        drop(srv);
        drop(dir);
    }
}
