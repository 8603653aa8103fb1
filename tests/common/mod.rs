//! Helpers shared by the tests that drive `weft serve` over HTTP: start a
//! daemon on a free loopback port, call it with a minimal HTTP/1.1 client.
#![allow(dead_code)] // each test binary uses a part

use std::borrow::Borrow;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A running `weft serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Server {
    /// `weft --models-dir MODELS --collections-dir COLLECTIONS serve --bind
    /// 127.0.0.1:0 ARGS...`, once it says where it listens.
    pub fn start_in(models: &Path, collections: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(weft_bin())
            .arg("--models-dir")
            .arg(models)
            .arg("--collections-dir")
            .arg(collections)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().rsplit("http://").next().unwrap().to_string();
        assert!(addr.starts_with("127.0.0.1:"), "server said: {line}");
        Server { child, addr }
    }

    /// The test bundles, `tiny-vl` by default, and `tests/data` as `--root`,
    /// then `extra`.
    pub fn start(collections: &Path, extra: &[&str]) -> Server {
        let models = PathBuf::from(ROOT).join("tests/bundles");
        let data = format!("{ROOT}/tests/data");
        let mut args = vec!["--bundle", "tiny-vl", "--root", &data];
        args.extend_from_slice(extra);
        Self::start_in(&models, collections, &args)
    }

    /// SIGTERM (the graceful path), then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request: (status, body as JSON, or as a JSON string when it is not
/// JSON). Status 0 is a transport error.
pub fn call(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    token: Option<&str>,
) -> (u16, Value) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, Value::Null);
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
    let body = body.unwrap_or(b"");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n",
        body.len()
    );
    if s.write_all(head.as_bytes()).is_err() {
        return (0, Value::Null);
    }
    // The server may answer (413) before reading the whole body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let payload = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let v = serde_json::from_str(payload).unwrap_or_else(|_| Value::String(payload.to_string()));
    (status, v)
}

/// POST a JSON body without a token.
pub fn post(addr: &str, path: &str, v: impl Borrow<Value>) -> (u16, Value) {
    call(
        addr,
        "POST",
        path,
        Some(v.borrow().to_string().as_bytes()),
        None,
    )
}

/// A file of `tests/data`, base64.
pub fn b64(file: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(format!("{ROOT}/tests/data/{file}")).unwrap())
}

/// A grey RGB8 PNG.
pub fn png_of(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([128, 128, 128]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// An empty scratch folder for this test process.
pub fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weft-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Copies a collection folder's files (not its `LOCK`) into a fresh `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

// ------------------------------------------------------------ bounded fuzzing

/// `base` cases, scaled by `WEFT_FUZZ_CASES_SCALE` (default 1).
pub fn cases(base: usize) -> usize {
    let scale: f64 = std::env::var("WEFT_FUZZ_CASES_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((base as f64) * scale).max(1.0) as usize
}

/// xorshift64*: deterministic, seeded per target.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A random mutation of `seed`: flips, overwrites, cuts, duplicates, inserts.
pub fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            b.push(rng.next() as u8);
            continue;
        }
        let at = rng.below(b.len());
        match rng.below(6) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b[at] = rng.next() as u8,
            2 => b.truncate(at),
            3 => {
                let end = (at + 1 + rng.below(64)).min(b.len());
                let chunk = b[at..end].to_vec();
                let to = rng.below(b.len());
                b.splice(to..to, chunk);
            }
            4 => {
                let n = rng.below(16);
                let fill: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                b.splice(at..at, fill);
            }
            _ => {
                // An "interesting" value where a length or count may be.
                let v: [u8; 4] = [0, 0xff, 0x7f, 0x80].map(|x| x ^ (rng.next() as u8 & 1));
                for (i, x) in v.iter().enumerate() {
                    if at + i < b.len() {
                        b[at + i] = *x;
                    }
                }
            }
        }
    }
    b
}

/// The `weft` binary (built for the tests that declare `required-features`).
#[allow(dead_code)]
pub fn weft_bin() -> &'static str {
    match option_env!("CARGO_BIN_EXE_weft") {
        Some(bin) => bin,
        None => panic!(
            "the weft binary is built with --features server (scripts/test.sh uses --all-features)"
        ),
    }
}
