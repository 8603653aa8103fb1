//! The daemon over real HTTP on loopback: every endpoint, the bad-input
//! matrix (each a 4xx JSON error), auth, graceful shutdown, and a bounded
//! load test (WEFT_LOAD_SECS, default 5) mixing searches and adds whose
//! acknowledged adds all survive a restart.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

mod common;

use common::{b64, call, png_of, post, temp, Server, ROOT};

fn assert_error(resp: (u16, Value), status: u16, code: &str, needle: &str) {
    let (s, v) = resp;
    assert_eq!(s, status, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains(needle), "message `{msg}` lacks `{needle}`");
}

#[test]
fn every_endpoint_works_and_bad_input_gets_4xx_json() {
    let dir = temp("api");
    let srv = Server::start(&dir, &["--max-body-bytes", "200000"]);
    let a = srv.addr.clone();
    // health, create, add (base64 image, text, server path), get, search, classify, embed
    let (s, h) = call(&a, "GET", "/health", None, None);
    assert_eq!(s, 200);
    assert_eq!(h["onnxruntime"]["version"], "1.31.1");
    assert_eq!(
        post(
            &a,
            "/collections",
            json!({"name": "c", "bundle": "tiny-vl"})
        )
        .0,
        201
    );
    let (s, v) = post(
        &a,
        "/collections/c/items",
        json!({"items": [
            {"id": "img1", "image_base64": b64("rgb_64x48.png"), "payload": {"kind": "photo", "year": 2021}},
            {"id": "img2", "path": format!("{ROOT}/tests/data/alpha_40x40.png"), "payload": {"kind": "photo", "year": 2019}},
            {"id": "txt1", "text": "a note about a red car", "payload": {"kind": "note"}}
        ]}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["added"], 3);
    let (s, v) = call(&a, "GET", "/collections/c/items/img1", None, None);
    assert_eq!((s, v["payload"]["year"].clone()), (200, json!(2021)));
    assert_eq!(v["grid"], json!([4, 4]));
    let (s, v) = post(
        &a,
        "/collections/c/search",
        json!({"text": "red car", "k": 2, "filter": {"kind": "photo"}, "explain": true}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["hits"].as_array().unwrap().len(), 2);
    assert!(v["hits"][0]["explanation"].is_array());
    let (s, v) = post(
        &a,
        "/collections/c/search",
        json!({"id": "img1", "scorer": "filip"}),
    );
    assert_eq!(s, 200, "{v}");
    assert!(v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["id"] != "img1"));
    let (s, v) = post(
        &a,
        "/classify",
        json!({"image_base64": b64("rgb_64x48.png"), "labels": ["red", "blue"], "top_k": 2}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["labels"].as_array().unwrap().len(), 2);
    let (s, v) = post(
        &a,
        "/embed",
        json!({"inputs": [{"text": "hello"}, {"image_base64": b64("grey_30x50.png")}]}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["items"][0]["embedding"].as_array().unwrap().len(), 32);
    assert_eq!(v["items"][1]["tokens"].as_array().unwrap().len(), 16);
    assert_eq!(
        call(&a, "GET", "/collections", None, None).1["collections"][0]["items"],
        3
    );
    assert_eq!(call(&a, "GET", "/collections/c", None, None).1["items"], 3);
    assert_eq!(
        call(&a, "DELETE", "/collections/c/items/txt1", None, None).0,
        200
    );
    assert_eq!(
        call(&a, "POST", "/collections/c/compact", Some(b""), None).0,
        200
    );
    let (s, m) = call(&a, "GET", "/metrics", None, None);
    assert_eq!(s, 200);
    assert!(
        m.as_str().unwrap().contains("weft_items_added_total 3"),
        "{m}"
    );

    // The bad-input matrix: always a 4xx JSON error that names the problem.
    assert_error(
        call(
            &a,
            "POST",
            "/collections/c/search",
            Some(b"{\"text\": "),
            None,
        ),
        400,
        "malformed_json",
        "JSON",
    );
    assert_error(
        post(
            &a,
            "/collections/c/search",
            json!({"text": "x", "k": "ten"}),
        ),
        422,
        "invalid_field",
        "`k`",
    );
    assert_error(
        post(
            &a,
            "/collections/c/items",
            json!({"items": [{"id": 5, "text": "x"}]}),
        ),
        422,
        "invalid_field",
        "items[0].id",
    );
    assert_error(
        post(
            &a,
            "/collections/c/search",
            json!({"text": "x", "colour": "red"}),
        ),
        422,
        "invalid_field",
        "colour",
    );
    let huge = json!({"text": "x".repeat(300_000)}).to_string();
    let (s, v) = call(
        &a,
        "POST",
        "/collections/c/search",
        Some(huge.as_bytes()),
        None,
    );
    assert_eq!(s, 413, "{v}");
    assert_eq!(v["error"]["code"], "body_too_large");
    assert_error(
        post(
            &a,
            "/collections/c/items",
            json!({"items": [{"id": "b", "image_base64": "***not base64***"}]}),
        ),
        422,
        "bad_base64",
        "items[0]",
    );
    assert_error(
        post(&a, "/collections/nope/search", json!({"text": "x"})),
        404,
        "not_found",
        "nope",
    );
    assert_error(
        post(&a, "/collections/c/search", json!({"path": "/etc/passwd"})),
        403,
        "path_not_allowed",
        "/etc/passwd",
    );
    assert_error(
        post(
            &a,
            "/collections/c/items",
            json!({"items": [{"id": "bad", "image_base64": b64("rgb_64x48.png")[..40].to_string()}]}),
        ),
        422,
        "invalid_input",
        "items[0]",
    );
    assert_error(
        post(
            &a,
            "/collections/c/items",
            json!({"items": [{"id": "img1", "text": "dup"}]}),
        ),
        409,
        "duplicate_id",
        "img1",
    );
    assert_error(
        post(
            &a,
            "/collections/c/search",
            json!({"text": "x", "filter": {"year": {"near": 1}}}),
        ),
        422,
        "invalid_input",
        "near",
    );
    assert_error(
        post(
            &a,
            "/collections/c/search",
            json!({"text": "x", "scorer": "best"}),
        ),
        400,
        "invalid_option",
        "best",
    );
    assert_error(
        post(&a, "/classify", json!({"text": "x", "labels": []})),
        422,
        "invalid_input",
        "empty",
    );
    assert_error(
        post(&a, "/collections", json!({"name": "../escape"})),
        400,
        "invalid_name",
        "escape",
    );
    assert_error(
        call(&a, "GET", "/nowhere", None, None),
        404,
        "no_route",
        "endpoint",
    );
    // the failed add of `bad` added nothing
    assert_error(
        call(&a, "GET", "/collections/c/items/bad", None, None),
        404,
        "not_found",
        "bad",
    );
    // never a 5xx for any of the above
    let (_, m) = call(&a, "GET", "/metrics", None, None);
    assert!(
        m.as_str()
            .unwrap()
            .contains("weft_errors_total{class=\"5xx\"} 0"),
        "{m}"
    );
    let status = srv.stop();
    assert!(status.success(), "SIGTERM should exit cleanly: {status:?}");
}

#[test]
fn the_openapi_document_matches_the_routes() {
    let dir = temp("openapi");
    let srv = Server::start(&dir, &[]);
    let a = srv.addr.clone();
    let (s, doc) = call(&a, "GET", "/openapi.json", None, None);
    assert_eq!(s, 200);
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 10);
    post(&a, "/collections", json!({"name": "o"}));
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path.replace("{name}", "o").replace("{id}", "missing");
            let body = if method == "post" {
                Some(&b"{}"[..])
            } else {
                None
            };
            let (s, v) = call(&a, &method.to_uppercase(), &concrete, body, None);
            assert!(
                s != 405 && v["error"]["code"] != "no_route",
                "{method} {path}: {s} {v}"
            );
            assert!(s < 500, "{method} {path}: {s} {v}");
        }
    }
    // and every route of the router is documented: an undocumented path is a 404 no_route
    assert_eq!(call(&a, "GET", "/collections/o/secret", None, None).0, 404);
}

#[test]
fn auth_and_bind_safety() {
    let dir = temp("auth");
    let srv = Server::start(&dir, &["--token", "s3cret"]);
    let a = srv.addr.clone();
    assert_eq!(
        call(&a, "GET", "/health", None, None).0,
        200,
        "health stays public"
    );
    assert_error(
        call(&a, "GET", "/collections", None, None),
        401,
        "unauthorized",
        "bearer",
    );
    assert_error(
        call(&a, "GET", "/collections", None, Some("wrong")),
        401,
        "unauthorized",
        "bearer",
    );
    assert_eq!(call(&a, "GET", "/collections", None, Some("s3cret")).0, 200);
    drop(srv);
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["serve", "--bind", "0.0.0.0:0"])
        .env_remove("WEFT_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("without a bearer token"));
}

#[test]
fn load_mixing_searches_and_adds_loses_no_acknowledged_add() {
    let secs: u64 = std::env::var("WEFT_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let dir = temp("load");
    let srv = Server::start(&dir, &[]);
    let a = srv.addr.clone();
    assert_eq!(post(&a, "/collections", json!({"name": "l"})).0, 201);
    let acked = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (a, acked, errors) = (a.clone(), Arc::clone(&acked), Arc::clone(&errors));
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut n = 0;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let (s, v) = if n % 3 == 0 {
                        post(&a, "/collections/l/items", json!({"items": [{"id": format!("w{w}-{n}"), "text": format!("note {n} from worker {w}")}]}))
                    } else {
                        post(&a, "/collections/l/search", json!({"text": format!("note {n}"), "k": 5}))
                    };
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    if s == 200 {
                        if n % 3 == 0 {
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                    } else {
                        errors.fetch_add(1, Ordering::SeqCst);
                        eprintln!("load error: {s} {v}");
                    }
                    n += 1;
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<f64> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    lat.sort_by(f64::total_cmp);
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize];
    eprintln!(
        "load: {} requests in {secs}s ({:.0}/s), p50 {:.1} ms, p99 {:.1} ms, {} acknowledged adds, {} errors",
        lat.len(),
        lat.len() as f64 / secs as f64,
        p(0.5),
        p(0.99),
        acked.load(Ordering::SeqCst),
        errors.load(Ordering::SeqCst)
    );
    assert_eq!(errors.load(Ordering::SeqCst), 0);
    assert!(srv.stop().success());
    // After a restart the item count equals the acknowledged adds.
    let srv = Server::start(&dir, &[]);
    let (_, info) = call(&srv.addr, "GET", "/collections/l", None, None);
    assert_eq!(info["items"], acked.load(Ordering::SeqCst), "{info}");
}

#[test]
fn a_failing_add_never_drops_a_concurrent_requests_items() {
    let dir = temp("concurrent");
    let srv = Server::start(&dir, &[]);
    let a = srv.addr.clone();
    assert_eq!(post(&a, "/collections", json!({"name": "k"})).0, 201);
    assert_eq!(
        post(
            &a,
            "/collections/k/items",
            json!({"items": [{"id": "taken", "text": "x"}]})
        )
        .0,
        200
    );
    let acked = Arc::new(AtomicUsize::new(1));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (a, acked) = (a.clone(), Arc::clone(&acked));
            std::thread::spawn(move || {
                for n in 0..25 {
                    // Every other request fails on its last item (a duplicate id) and must add nothing.
                    let last = if n % 2 == 0 {
                        format!("w{w}-{n}-c")
                    } else {
                        "taken".to_string()
                    };
                    let items = json!({"items": [
                        {"id": format!("w{w}-{n}-a"), "text": "a"},
                        {"id": format!("w{w}-{n}-b"), "text": "b"},
                        {"id": last, "text": "c"}
                    ]});
                    let (s, v) = post(&a, "/collections/k/items", items);
                    match s {
                        200 => {
                            acked.fetch_add(3, Ordering::SeqCst);
                        }
                        409 => assert_eq!(v["error"]["code"], "duplicate_id"),
                        other => panic!("{other} {v}"),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let (_, info) = call(&a, "GET", "/collections/k", None, None);
    assert_eq!(info["items"], acked.load(Ordering::SeqCst), "{info}");
}

/// A raw request with any Authorization header.
fn call_auth(addr: &str, path: &str, authorization: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {authorization}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A whole PNG of `w` x `h` grey pixels (small: it compresses well).
#[test]
fn hardening_limits_names_and_disclosure() {
    let dir = temp("harden");
    let srv = Server::start(
        &dir,
        &[
            "--token",
            "s3cret",
            "--max-labels",
            "8",
            "--max-text-bytes",
            "1000",
            "--max-request-pixels",
            "1000000",
            "--max-request-decoded-mib",
            "4",
        ],
    );
    let a = srv.addr.clone();
    let auth = |method: &str, path: &str, v: Value| {
        call(
            &a,
            method,
            path,
            Some(v.to_string().as_bytes()),
            Some("s3cret"),
        )
    };
    // /health without the token says only that the server is up.
    let (s, v) = call(&a, "GET", "/health", None, None);
    assert_eq!(s, 200);
    assert_eq!(v, json!({"status": "ok"}));
    let (_, v) = call(&a, "GET", "/health", None, Some("s3cret"));
    assert!(v["onnxruntime"].is_object(), "{v}");
    // The bearer scheme is case-insensitive.
    assert_eq!(call_auth(&a, "/collections", "bearer s3cret"), 200);
    assert_eq!(call_auth(&a, "/collections", "BEARER s3cret"), 200);
    assert_eq!(call_auth(&a, "/collections", "Basic s3cret"), 401);
    // `bundle` is a name, never a server path.
    assert_error(
        auth(
            "POST",
            "/embed",
            json!({"bundle": "/etc", "inputs": [{"text": "a"}]}),
        ),
        422,
        "invalid_field",
        "paths are not accepted",
    );
    assert_error(
        auth(
            "POST",
            "/embed",
            json!({"bundle": "../bundles/tiny-vl", "inputs": [{"text": "a"}]}),
        ),
        422,
        "invalid_field",
        "bundle",
    );
    assert_error(
        auth(
            "POST",
            "/embed",
            json!({"bundle": "no-such-bundle", "inputs": [{"text": "a"}]}),
        ),
        404,
        "not_found",
        "no-such-bundle",
    );
    assert_eq!(
        auth(
            "POST",
            "/embed",
            json!({"bundle": "tiny-vl", "inputs": [{"text": "a"}]})
        )
        .0,
        200
    );
    // No existence oracle: outside the roots, existing or not, is 403.
    for p in ["/etc/passwd", "/no/such/file.jpg", "/etc/../etc/hostname"] {
        assert_error(
            auth("POST", "/embed", json!({"inputs": [{"path": p}]})),
            403,
            "path_not_allowed",
            "outside",
        );
    }
    // Limits: labels, text bytes, pixels per request (before decoding).
    let labels: Vec<String> = (0..9).map(|i| format!("label {i}")).collect();
    assert_error(
        auth(
            "POST",
            "/classify",
            json!({"text": "a cat", "labels": labels}),
        ),
        413,
        "too_large",
        "--max-labels",
    );
    let many: Vec<String> = (0..300).map(|i| format!("{i} {{}}")).collect();
    assert_error(
        auth(
            "POST",
            "/classify",
            json!({"text": "a", "labels": ["cat"], "templates": many}),
        ),
        413,
        "too_large",
        "templates",
    );
    assert_error(
        auth(
            "POST",
            "/classify",
            json!({"text": "a", "labels": ["x".repeat(100)], "templates": ["{}".repeat(20)]}),
        ),
        413,
        "too_large",
        "templates[0]",
    );
    assert_error(
        auth(
            "POST",
            "/embed",
            json!({"inputs": [{"text": "x".repeat(1001)}]}),
        ),
        413,
        "too_large",
        "inputs[0]",
    );
    let big = base64::engine::general_purpose::STANDARD.encode(png_of(1000, 600));
    let small = b64("rgb_64x48.png");
    assert_error(
        auth(
            "POST",
            "/embed",
            json!({"inputs": [{"image_base64": small}, {"image_base64": big}, {"image_base64": big}]}),
        ),
        413,
        "too_large",
        "inputs[2]",
    );
    // Bit depth and channels count: 700x700 is within the pixel budget, but
    // as 16-bit RGBA it decodes to 3.9 MB, and two of them pass 4 MiB.
    let deep = {
        let img = image::ImageBuffer::<image::Rgba<u16>, _>::from_pixel(
            700,
            700,
            image::Rgba([1u16, 2, 3, 65535]),
        );
        let mut out = Vec::new();
        image::DynamicImage::ImageRgba16(img)
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        base64::engine::general_purpose::STANDARD.encode(out)
    };
    let (s, v) = auth(
        "POST",
        "/embed",
        json!({"inputs": [{"image_base64": deep}, {"image_base64": deep}]}),
    );
    assert_eq!(s, 413, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("inputs[1]")
            && msg.contains("4 channels x 16 bits")
            && msg.contains("--max-request-decoded-mib"),
        "{msg}"
    );
    let (s, v) = auth(
        "POST",
        "/embed",
        json!({"inputs": [{"image_base64": deep}]}),
    );
    assert_eq!(s, 200, "{v}");
    // Error bodies name files without the server's folders.
    std::fs::create_dir_all(dir.join("broken")).unwrap();
    std::fs::write(dir.join("broken/MANIFEST"), b"not a manifest").unwrap();
    let (s, v) = call(&a, "GET", "/collections/broken", None, Some("s3cret"));
    let msg = v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(s >= 400, "{v}");
    assert!(
        !msg.contains(dir.to_str().unwrap()) && !msg.contains(ROOT),
        "server folders in an error body: {msg}"
    );
    assert!(msg.contains("<collections>"), "{msg}");
    // A truncated image is refused, not indexed.
    let png = std::fs::read(format!("{ROOT}/tests/data/rgb_64x48.png")).unwrap();
    let cut = base64::engine::general_purpose::STANDARD.encode(&png[..png.len() - 20]);
    assert_error(
        auth("POST", "/embed", json!({"inputs": [{"image_base64": cut}]})),
        422,
        "invalid_input",
        "truncated",
    );
}

#[test]
fn a_large_request_neither_stalls_small_ones_nor_outlives_its_timeout() {
    // Ten 3000x3000 images (9 Mpx each, within the 100 Mpx request budget).
    let big_png = base64::engine::general_purpose::STANDARD.encode(png_of(3000, 3000));
    let big: Vec<Value> = (0..10).map(|_| json!({"image_base64": big_png})).collect();
    let big_body = json!({"inputs": big}).to_string();

    let dir = temp("fair");
    let srv = Server::start(&dir, &[]);
    let a = srv.addr.clone();
    // Warm the encoders.
    assert_eq!(
        post(&a, "/embed", json!({"inputs": [{"text": "warm"}]})).0,
        200
    );
    let start = Instant::now();
    let big_done = {
        let a = a.clone();
        let body = big_body.clone();
        std::thread::spawn(move || {
            let r = call(&a, "POST", "/embed", Some(body.as_bytes()), None);
            (r.0, start.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(150));
    let (status, _) = post(&a, "/embed", json!({"inputs": [{"text": "a small query"}]}));
    let small_done = start.elapsed();
    let (big_status, big_elapsed) = big_done.join().unwrap();
    assert_eq!((status, big_status), (200, 200));
    assert!(
        small_done < big_elapsed,
        "the small request ({small_done:?}) waited for the large one ({big_elapsed:?})"
    );
    eprintln!("small request {small_done:?}, large request {big_elapsed:?}");
    drop(srv);

    // A timed-out request stops encoding: the next request is answered.
    let srv = Server::start(&dir, &["--timeout-s", "0.2"]);
    let a = srv.addr.clone();
    assert_eq!(
        post(&a, "/embed", json!({"inputs": [{"text": "warm"}]})).0,
        200
    );
    let (s, v) = call(&a, "POST", "/embed", Some(big_body.as_bytes()), None);
    assert_eq!(s, 504, "{v}");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        post(&a, "/embed", json!({"inputs": [{"text": "after"}]})).0,
        200
    );
    let (_, m) = call(&a, "GET", "/metrics", None, None);
    let cancelled: u64 = m
        .as_str()
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("weft_encode_cancelled_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(cancelled > 0, "{m}");
}

#[test]
fn the_token_can_come_from_a_file_and_stays_out_of_ps() {
    let dir = temp("tokenfile");
    let file = dir.join("token");
    std::fs::write(&file, "fr0m-a-file\n").unwrap();
    let srv = Server::start(&dir, &["--token-file", file.to_str().unwrap()]);
    let a = srv.addr.clone();
    assert_eq!(call(&a, "GET", "/collections", None, None).0, 401);
    assert_eq!(
        call(&a, "GET", "/collections", None, Some("fr0m-a-file")).0,
        200
    );
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", srv.child.id())).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&cmdline).contains("fr0m-a-file"));
}

#[test]
fn a_mapped_file_truncated_under_the_daemon_fails_the_search_and_the_daemon_lives() {
    let dir = temp("sigbus");
    let mut srv = Server::start(&dir, &[]);
    let a = srv.addr.clone();
    assert_eq!(post(&a, "/collections", json!({"name": "c"})).0, 201);
    let items: Vec<Value> = (0..50)
        .map(|i| json!({"id": format!("t{i}"), "text": format!("note {i}")}))
        .collect();
    assert_eq!(
        post(&a, "/collections/c/items", json!({ "items": items })).0,
        200
    );
    assert_eq!(post(&a, "/collections/c/compact", json!({})).0, 200);
    let search = json!({"text": "note", "k": 3, "scorer": "filip"});
    assert_eq!(post(&a, "/collections/c/search", &search).0, 200);
    // Another program cuts the segment's vectors and tokens under the daemon.
    for e in std::fs::read_dir(dir.join("c")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "vec" || x == "tok") {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .unwrap()
                .set_len(0)
                .unwrap();
        }
    }
    // The search reads the cut pages: it fails, naming a file, and the
    // daemon keeps serving.
    let (s, v) = post(&a, "/collections/c/search", &search);
    assert_eq!(s, 500, "{v}");
    assert_eq!(v["error"]["code"], "corrupted", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("truncated or replaced by another program while open")
            && (msg.contains(".vec") || msg.contains(".tok")),
        "{msg}"
    );
    // Every later search of that collection fails the same way (never zeros).
    assert_eq!(post(&a, "/collections/c/search", &search).0, 500);
    assert!(srv.alive(), "the daemon died");
    assert_eq!(call(&a, "GET", "/health", None, None).0, 200);
    assert_eq!(post(&a, "/collections", json!({"name": "d"})).0, 201);
    assert_eq!(
        post(
            &a,
            "/collections/d/items",
            json!({"items": [{"id": "x", "text": "a note"}]})
        )
        .0,
        200
    );
    let (s, v) = post(&a, "/collections/d/search", &search);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["hits"][0]["id"], "x");
    assert!(srv.stop().success());
}

/// A SIGBUS that is not a read of a cut file of ours (here, sent with
/// kill) still stops the daemon, as a SIGBUS death would (exit 135).
#[test]
fn a_sigbus_outside_weft_mappings_stops_the_daemon_with_status_135() {
    let dir = temp("sigbus-other");
    let mut srv = Server::start(&dir, &[]);
    let _ = Command::new("kill")
        .arg("-BUS")
        .arg(srv.child.id().to_string())
        .status();
    let status = srv.child.wait().unwrap();
    assert_eq!(status.code(), Some(135), "{status:?}");
}
