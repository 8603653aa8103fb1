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
