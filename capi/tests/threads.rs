//! The C functions called from several threads at once on one engine and
//! one collection, as a C app would (through the same `extern "C"` symbols),
//! plus the boundary's rules: statuses, per-thread last errors, NULLs.
//! Needs ONNX Runtime in `.weft/` (scripts/setup-ort.sh); uses the tiny test
//! bundle.

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use weft_capi::*;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cs(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn last_error() -> String {
    // SAFETY: weft_last_error returns a valid NUL-terminated string.
    unsafe { CStr::from_ptr(weft_last_error()) }
        .to_string_lossy()
        .into_owned()
}

struct Ptr<T>(*mut T);
// SAFETY: the handles are documented thread-safe; the test frees them after
// every thread has joined.
unsafe impl<T> Send for Ptr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Ptr<T> {}

fn search_ids(c: *const weft_collection, text: &str) -> Vec<String> {
    let mut r = ptr::null_mut();
    // SAFETY: live handle, valid buffers.
    let s = unsafe {
        weft_search(
            c,
            WEFT_TEXT,
            text.as_ptr(),
            text.len(),
            5,
            ptr::null(),
            ptr::null(),
            &mut r,
        )
    };
    assert_eq!(s, weft_status::WEFT_OK, "{}", last_error());
    // SAFETY: `r` is live until freed below.
    let ids = (0..unsafe { weft_results_len(r) })
        .map(|i| {
            // SAFETY: in range; valid until the results are freed.
            unsafe { CStr::from_ptr(weft_results_id(r, i)) }
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    // SAFETY: freed once.
    unsafe { weft_results_free(r) };
    ids
}

#[test]
fn threads_share_an_engine_and_a_collection() {
    let project = cs(root().join(".weft").to_str().unwrap());
    let bundle = cs(root().join("tests/bundles/tiny-vl").to_str().unwrap());
    let dir = std::env::temp_dir().join(format!("weft-capi-threads-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_c = cs(dir.to_str().unwrap());
    let mut engine = ptr::null_mut();
    let mut coll = ptr::null_mut();
    // SAFETY: valid strings and out-pointers.
    unsafe {
        assert_eq!(
            weft_engine_new(
                project.as_ptr(),
                cs(r#"{"threads": 1}"#).as_ptr(),
                &mut engine
            ),
            weft_status::WEFT_OK,
            "{}",
            last_error()
        );
        assert_eq!(
            weft_collection_open(engine, dir_c.as_ptr(), bundle.as_ptr(), &mut coll),
            weft_status::WEFT_OK,
            "{}",
            last_error()
        );
    }
    let (e, c) = (Ptr(engine), Ptr(coll));
    // Four threads stage adds at once; one commit takes them all.
    std::thread::scope(|s| {
        for t in 0..4 {
            let c = &c;
            s.spawn(move || {
                for i in 0..5 {
                    let id = cs(&format!("t{t}-{i}"));
                    let text = format!("thread {t} note {i} about cats and dogs");
                    let payload = cs(&format!(r#"{{"thread": {t}}}"#));
                    // SAFETY: live handle, valid buffers.
                    let s = unsafe {
                        weft_collection_add(
                            c.0,
                            id.as_ptr(),
                            WEFT_TEXT,
                            text.as_ptr(),
                            text.len(),
                            payload.as_ptr(),
                        )
                    };
                    assert_eq!(s, weft_status::WEFT_OK, "{}", last_error());
                }
            });
        }
    });
    let mut changes = 0usize;
    let mut n = 0usize;
    // SAFETY: live handle, valid out-pointers.
    unsafe {
        assert_eq!(
            weft_collection_commit(c.0, &mut changes),
            weft_status::WEFT_OK
        );
        assert_eq!(weft_collection_len(c.0, &mut n), weft_status::WEFT_OK);
    }
    assert_eq!((changes, n), (20, 20));
    // Eight threads search and embed at once: the same answers as alone.
    let alone = search_ids(c.0, "a note about cats");
    assert_eq!(alone.len(), 5);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (c, e, alone, bundle) = (&c, &e, &alone, &bundle);
            s.spawn(move || {
                for _ in 0..5 {
                    assert_eq!(&search_ids(c.0, "a note about cats"), alone);
                    let mut v = [0f32; 64];
                    let mut dim = 0usize;
                    let q = "cats";
                    // SAFETY: live handle, buffers of the given sizes.
                    let st = unsafe {
                        weft_embed(
                            e.0,
                            bundle.as_ptr(),
                            WEFT_TEXT,
                            q.as_ptr(),
                            q.len(),
                            v.as_mut_ptr(),
                            v.len(),
                            &mut dim,
                        )
                    };
                    assert_eq!(st, weft_status::WEFT_OK, "{}", last_error());
                    assert!(dim > 0 && dim <= 64);
                }
                // Each thread's last error is its own.
                let bad = cs(&format!("bad-scorer-{t}"));
                let mut r = ptr::null_mut();
                // SAFETY: live handle, valid buffers.
                let st = unsafe {
                    weft_search(
                        c.0,
                        WEFT_TEXT,
                        "x".as_ptr(),
                        1,
                        5,
                        bad.as_ptr(),
                        ptr::null(),
                        &mut r,
                    )
                };
                assert_eq!(st, weft_status::WEFT_INVALID_ARGUMENT);
                assert!(r.is_null());
                std::thread::yield_now();
                assert!(
                    last_error().contains(&format!("bad-scorer-{t}")),
                    "{}",
                    last_error()
                );
            });
        }
    });
    // SAFETY: every thread has joined; each handle is freed once.
    unsafe {
        weft_collection_free(c.0);
        weft_engine_free(e.0);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_are_statuses_that_name_them() {
    let mut engine = ptr::null_mut();
    let nul: *const c_char = ptr::null();
    // SAFETY: the arguments are NULL or valid, as the functions allow.
    unsafe {
        assert_eq!(
            weft_engine_new(nul, cs("{\"device\": \"tpu\"}").as_ptr(), &mut engine),
            weft_status::WEFT_INVALID_ARGUMENT
        );
        assert!(engine.is_null());
        assert!(last_error().contains("device"), "{}", last_error());
        assert_eq!(
            weft_engine_new(nul, cs("{\"colour\": 1}").as_ptr(), &mut engine),
            weft_status::WEFT_INVALID_ARGUMENT
        );
        assert!(
            last_error().contains("options_json.colour"),
            "{}",
            last_error()
        );
        assert_eq!(
            weft_engine_new(nul, cs("{not json").as_ptr(), &mut engine),
            weft_status::WEFT_INVALID_ARGUMENT
        );
        assert!(last_error().contains("options_json"), "{}", last_error());
        let bad_utf8 = [0x66u8, 0xff, 0];
        assert_eq!(
            weft_engine_new(bad_utf8.as_ptr().cast(), nul, &mut engine),
            weft_status::WEFT_INVALID_ARGUMENT
        );
        assert!(last_error().contains("project_dir"), "{}", last_error());
        let mut r = ptr::null_mut();
        assert_eq!(
            weft_search(ptr::null(), WEFT_TEXT, ptr::null(), 0, 5, nul, nul, &mut r),
            weft_status::WEFT_INVALID_ARGUMENT
        );
        assert!(last_error().contains("collection"), "{}", last_error());
        assert_eq!(weft_results_len(ptr::null()), 0);
        assert!(weft_results_id(ptr::null(), 0).is_null());
        assert!(weft_results_score(ptr::null(), 0).is_nan());
        weft_results_free(ptr::null_mut());
        weft_engine_free(ptr::null_mut());
        weft_string_free(ptr::null_mut());
        assert_eq!(
            CStr::from_ptr(weft_version()).to_str().unwrap(),
            env!("CARGO_PKG_VERSION")
        );
    }
}
