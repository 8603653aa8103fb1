//! The `weft` binary end to end (doctor and error reporting).

use std::process::Command;

fn weft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weft"))
}

#[test]
fn doctor_reports_version_and_cpu_provider() {
    let out = weft().arg("doctor").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("version:   1.31"), "{stdout}");
    assert!(
        stdout.contains("cpu probe: ran on CPUExecutionProvider"),
        "{stdout}"
    );
    assert!(stdout.contains("CPU features"), "{stdout}");
    assert!(stdout.contains("cuda probe:"), "{stdout}");
}

#[test]
fn doctor_json_is_machine_readable() {
    let out = weft().args(["doctor", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["runtime"]["Ok"]["cpu_probe"]["Ok"],
        "CPUExecutionProvider"
    );
}

#[test]
fn missing_library_lists_where_it_looked() {
    let dir = std::env::temp_dir().join(format!("weft-cli-nolib-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = weft()
        .args(["doctor", "--ort-lib"])
        .arg(dir.join("missing.so"))
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("missing.so"), "{stdout}");
    assert!(stdout.contains("does not exist"), "{stdout}");
    assert!(stdout.contains("scripts/setup-ort.sh"), "{stdout}");
}

#[test]
fn a_file_that_is_not_the_library_is_a_load_error_not_a_panic() {
    let dir = std::env::temp_dir().join(format!("weft-cli-badlib-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("libonnxruntime.so");
    std::fs::write(&fake, b"\x7fELF not really").unwrap();
    let out = weft()
        .args(["doctor", "--ort-lib"])
        .arg(&fake)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("cannot load ONNX Runtime from"), "{stdout}");
    assert!(stdout.contains("libonnxruntime.so"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    let out = weft().arg("no-such-command").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

fn tiny_env(cmd: &mut Command, collections: &std::path::Path) {
    cmd.arg("--models-dir")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bundles"))
        .arg("--collections-dir")
        .arg(collections);
}

fn temp(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("weft-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn index_is_incremental_and_search_prints_json() {
    let root = temp("incr");
    let photos = root.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    for f in ["rgb_64x48.png", "alpha_40x40.png", "grey_30x50.png"] {
        std::fs::copy(data.join(f), photos.join(f)).unwrap();
    }
    std::fs::write(photos.join("note.txt"), "a note about cats").unwrap();
    std::fs::write(photos.join("broken.jpg"), "not an image").unwrap();
    let run = |args: &[&str]| {
        let mut cmd = weft();
        tiny_env(&mut cmd, &root.join("cols"));
        cmd.args(args).output().unwrap()
    };
    let p = photos.to_str().unwrap();
    let out = run(&["index", p, "-c", "c1", "--bundle", "tiny-vl", "--json"]);
    // broken.jpg fails: the rest is indexed and the exit code says so.
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["items_added"], 4);
    assert_eq!(r["errors"].as_array().unwrap().len(), 1, "broken.jpg: {r}");
    assert!(r["errors"][0].as_str().unwrap().contains("broken.jpg"));
    // unchanged files are skipped
    let r: serde_json::Value =
        serde_json::from_slice(&run(&["index", p, "-c", "c1", "--json"]).stdout).unwrap();
    assert_eq!(r["files_unchanged"], 4);
    assert_eq!(r["items_added"], 0);
    // a changed file is re-indexed, a removed one is removed
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(photos.join("note.txt"), "a longer note about dogs").unwrap();
    std::fs::remove_file(photos.join("grey_30x50.png")).unwrap();
    let r: serde_json::Value =
        serde_json::from_slice(&run(&["index", p, "-c", "c1", "--json"]).stdout).unwrap();
    assert_eq!(r["items_added"], 1, "{r}");
    assert_eq!(r["items_removed"], 2, "{r}");
    let out = run(&["search", "dogs", "-c", "c1", "--json", "-k", "10"]);
    let hits: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(hits.as_array().unwrap().len(), 3);
    let info = run(&["collections", "info", "c1"]);
    assert!(String::from_utf8_lossy(&info.stdout).contains("\"items\": 3"));
    assert!(run(&["collections", "verify", "c1"]).status.success());
    assert!(run(&["collections", "compact", "c1"]).status.success());
    let list = String::from_utf8_lossy(&run(&["collections", "list"]).stdout).to_string();
    assert!(list.contains("c1") && list.contains("3 items"), "{list}");
    assert!(run(&["collections", "delete", "c1"]).status.success());
    assert_eq!(run(&["search", "x", "-c", "c1"]).status.code(), Some(4));
}

#[test]
fn exit_codes_distinguish_usage_input_and_name_the_input() {
    let root = temp("codes");
    let run = |args: &[&str]| {
        let mut cmd = weft();
        tiny_env(&mut cmd, &root);
        cmd.args(args).output().unwrap()
    };
    let img = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rgb_64x48.png");
    // usage: bad scorer value, two queries at once, no labels
    let out = run(&["index", img, "-c", "k", "--bundle", "tiny-vl"]);
    assert!(out.status.success());
    assert_eq!(
        run(&["search", "x", "-c", "k", "--scorer", "best"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(&["search", "x", "--smiles", "C", "-c", "k"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(&["classify", img, "--bundle", "tiny-vl"]).status.code(),
        Some(2)
    );
    // input: unknown collection, missing image, bad filter, molecule query on an image bundle
    let out = run(&["search", "x", "-c", "nope"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    let out = run(&["search", "--image", "/no/such.png", "-c", "k"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such.png"));
    let out = run(&[
        "search",
        "x",
        "-c",
        "k",
        "--filter",
        "{\"a\": {\"near\": 1}}",
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("near"));
    let out = run(&["search", "--smiles", "CCO", "-c", "k"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no molecule encoder"));
    let out = run(&["classify", img, "--bundle", "tiny-vl", "--labels", "a,a"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("duplicate label"));
    // a second writer is refused while one holds the lock (the daemon, say)
    let dir = root.join("k");
    let c = weft::store::Collection::open_writer(&dir).unwrap();
    let out = run(&["index", img, "-c", "k"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("locked"));
    drop(c);
}

#[test]
fn molecule_files_are_indexed_and_invalid_smiles_are_reported_with_positions() {
    let root = temp("mol");
    let smi = root.join("mols.smi");
    std::fs::write(
        &smi,
        "CCO ethanol\nc1ccccc1O phenol\nC1CC§C1 bad\nCC(=O)O acetic acid\n",
    )
    .unwrap();
    let csv = root.join("mols.csv");
    std::fs::write(
        &csv,
        "smiles,name,mw\nCCN,ethylamine,45.08\n\"CC(C)O\",isopropanol,60.1\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut cmd = weft();
        tiny_env(&mut cmd, &root.join("cols"));
        cmd.args(args).output().unwrap()
    };
    let out = run(&[
        "index",
        smi.to_str().unwrap(),
        csv.to_str().unwrap(),
        "-c",
        "m",
        "--bundle",
        "tiny-mol",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["items_added"], 5, "{r}");
    let err = r["errors"][0].as_str().unwrap();
    assert!(
        err.contains("invalid SMILES") && err.contains("position 4") && err.contains(".smi:"),
        "{err}"
    );
    let out = run(&[
        "search",
        "ethanol",
        "-c",
        "m",
        "--json",
        "--filter",
        "{\"name\": \"isopropanol\"}",
    ]);
    let hits: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(hits.as_array().unwrap().len(), 1);
    assert_eq!(hits[0]["payload"]["mw"], "60.1");
    let out = run(&["search", "--smiles", "CCO", "-c", "m", "-k", "1", "--json"]);
    let hits: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        hits[0]["payload"]["name"], "ethanol",
        "a molecule finds itself first"
    );
}

#[test]
fn indexing_converges_with_duplicate_ids_and_failed_inputs_exit_4() {
    let dir = std::env::temp_dir().join(format!("weft-cli-dups-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("a.jsonl"),
        "{\"id\":\"x\",\"text\":\"alpha\"}\n{\"id\":\"y\",\"text\":\"beta\"}\n{\"id\":\"y\",\"text\":\"beta again\"}\n",
    )
    .unwrap();
    std::fs::write(
        data.join("b.jsonl"),
        "{\"id\":\"x\",\"text\":\"gamma\"}\n{\"id\":\"z\",\"text\":\"delta\"}\n",
    )
    .unwrap();
    let index = || {
        let mut cmd = weft();
        tiny_env(&mut cmd, &dir.join("collections"));
        cmd.args(["index", "--bundle", "tiny-vl", "-c", "dups"])
            .arg(&data)
            .output()
            .unwrap()
    };
    let out = index();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("a.jsonl:3: id `y` is already used at") && stderr.contains("a.jsonl:2"),
        "{stderr}"
    );
    assert!(
        stderr.contains("b.jsonl:1: id `x` belongs to") && stderr.contains("a.jsonl"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("3 items in the collection"), "{stdout}");
    // Again: the files with skipped lines are read again and say so again
    // (exit 4), and nothing flips: `x` stays a.jsonl's.
    for _ in 0..2 {
        let out = index();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stdout.contains("3 items in the collection"), "{stdout}");
        assert_eq!(out.status.code(), Some(4), "{stderr}");
        assert!(stderr.contains("b.jsonl:1: id `x` belongs to"), "{stderr}");
        let mut cmd = weft();
        tiny_env(&mut cmd, &dir.join("collections"));
        let out = cmd
            .args(["search", "alpha", "-c", "dups", "-k", "3", "--json"])
            .output()
            .unwrap();
        let hits: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let x = hits
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["id"] == "x")
            .expect("x is there");
        assert!(x.to_string().contains("a.jsonl"), "{x}");
    }
    // Fixed: b.jsonl without the clash is indexed and the runs are quiet.
    std::fs::write(data.join("b.jsonl"), "{\"id\":\"z\",\"text\":\"delta\"}\n").unwrap();
    std::fs::write(
        data.join("a.jsonl"),
        "{\"id\":\"x\",\"text\":\"alpha\"}\n{\"id\":\"y\",\"text\":\"beta\"}\n",
    )
    .unwrap();
    assert_eq!(index().status.code(), Some(0));
    let out = index();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 indexed"));
    let _ = std::fs::remove_dir_all(&dir);
}
