//! Finding the ONNX Runtime shared library.
//!
//! weft never downloads anything at run time; it looks for the library in
//! this order and takes the first hit:
//!
//! 1. the explicit path in [`RuntimeOptions::ort_library`](super::RuntimeOptions)
//!    (a file, or a folder holding `libonnxruntime.so*`);
//! 2. the environment variable `WEFT_ORT_LIB`, then ort's own `ORT_DYLIB_PATH`;
//! 3. the project folder the caller names ([`RuntimeOptions::project_dir`](super::RuntimeOptions),
//!    a `.weft` folder): its `onnxruntime/{cpu,gpu}/lib/` that
//!    `scripts/setup-ort.sh` fills (`gpu/` first when CUDA may be used,
//!    `cpu/` first otherwise). The library never looks in the current
//!    folder or its parents by itself: finding `.weft` by walking up is a
//!    convenience of the `weft` command line, which passes what it found;
//! 4. beside the executable: `<exe dir>/` and `<exe dir>/lib/`.
//!
//! An explicit path (1 or 2) that does not exist is an error by itself: weft
//! does not silently pick another library than the one the caller named.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Environment variable naming the library file (or its folder).
pub const ORT_LIB_ENV: &str = "WEFT_ORT_LIB";
/// ort's own variable, honoured after ours.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";
/// The command that installs the CPU library into the project-local folder.
pub const INSTALL_CPU: &str = "scripts/setup-ort.sh";
/// The command that installs the CUDA library and its CUDA/cuDNN dependencies.
pub const INSTALL_GPU: &str = "scripts/setup-ort.sh --gpu";

/// Every input of the search, so that it is a pure function (and testable).
#[derive(Debug, Clone, Default)]
pub struct SearchPlaces {
    /// Path from the engine configuration.
    pub explicit: Option<PathBuf>,
    /// Values of `WEFT_ORT_LIB` and `ORT_DYLIB_PATH`, in that order, with the variable name.
    pub env: Vec<(&'static str, PathBuf)>,
    /// A `.weft` project folder named by the caller.
    pub project_dir: Option<PathBuf>,
    /// The folder holding the running executable.
    pub exe_dir: Option<PathBuf>,
    /// Look at the GPU build before the CPU build in the project-local folder.
    pub prefer_gpu: bool,
}

impl SearchPlaces {
    /// The places of this process: its environment, current directory and executable.
    pub fn from_process(
        explicit: Option<PathBuf>,
        project_dir: Option<PathBuf>,
        prefer_gpu: bool,
    ) -> Self {
        let env = [ORT_LIB_ENV, ORT_DYLIB_ENV]
            .into_iter()
            .filter_map(|name| match std::env::var_os(name) {
                Some(v) if !v.is_empty() => Some((name, PathBuf::from(v))),
                _ => None,
            })
            .collect();
        SearchPlaces {
            explicit,
            env,
            project_dir,
            exe_dir: std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf)),
            prefer_gpu,
        }
    }
}

/// Finds the library, or says where it looked.
pub fn locate(places: &SearchPlaces) -> Result<PathBuf> {
    locate_with_origin(places).map(|(lib, _)| lib)
}

/// Finds the library and says which rule found it (`weft doctor` prints it).
pub fn locate_with_origin(places: &SearchPlaces) -> Result<(PathBuf, String)> {
    let mut searched = Vec::new();
    let install = INSTALL_CPU.to_string();

    // 1 and 2: named by the caller; a miss is final.
    let mut named = places
        .explicit
        .iter()
        .map(|p| ("engine config `ort_library`", p))
        .chain(places.env.iter().map(|(name, p)| (*name, p)));
    // Only the first named place counts: the caller asked for that one.
    if let Some((origin, path)) = named.next() {
        match library_in(path) {
            Some(lib) => return Ok((lib, origin.to_string())),
            None => {
                searched.push(format!(
                    "{} ({origin}): {}",
                    path.display(),
                    if path.exists() {
                        "holds no libonnxruntime.so*"
                    } else {
                        "does not exist"
                    }
                ));
                return Err(Error::RuntimeNotFound { searched, install });
            }
        }
    }

    // 3: the project folder the caller named.
    let variants: [&str; 2] = if places.prefer_gpu {
        ["gpu", "cpu"]
    } else {
        ["cpu", "gpu"]
    };
    if let Some(project) = &places.project_dir {
        let base = project.join("onnxruntime");
        if base.is_dir() {
            for variant in variants {
                let lib_dir = base.join(variant).join("lib");
                match library_in(&lib_dir) {
                    Some(lib) => return Ok((lib, format!("project folder {}", project.display()))),
                    None => searched.push(format!(
                        "{} (project-local): empty or missing",
                        lib_dir.display()
                    )),
                }
            }
        } else {
            searched.push(format!("{} (project-local): not found", base.display()));
        }
    }

    // 4: beside the executable.
    if let Some(exe_dir) = &places.exe_dir {
        for dir in [exe_dir.clone(), exe_dir.join("lib")] {
            match library_in(&dir) {
                Some(lib) => return Ok((lib, "beside the executable".to_string())),
                None => searched.push(format!(
                    "{} (beside the executable): no libonnxruntime.so*",
                    dir.display()
                )),
            }
        }
    }
    Err(Error::RuntimeNotFound { searched, install })
}

/// `path` itself when it is a file, else the best `libonnxruntime.so*` inside the folder.
fn library_in(path: &Path) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path.to_path_buf());
    }
    let unversioned = path.join(LIB_NAME);
    if unversioned.is_file() {
        return Some(unversioned);
    }
    // The PyPI wheel ships only the versioned name: take the highest version.
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    for entry in std::fs::read_dir(path).ok()?.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(LIB_NAME)) else {
            continue;
        };
        let Some(version) = rest.strip_prefix('.') else {
            continue;
        };
        let parts: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
        if best.as_ref().is_none_or(|(v, _)| parts > *v) {
            best = Some((parts, entry.path()));
        }
    }
    best.map(|(_, p)| p)
}

const LIB_NAME: &str = "libonnxruntime.so";

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
    }

    fn tempdir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("weft-discovery-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn explicit_path_wins_and_a_missing_one_is_final() {
        let dir = tempdir("explicit");
        let lib = dir.join("custom.so");
        touch(&lib);
        touch(&dir.join(".weft/onnxruntime/cpu/lib/libonnxruntime.so.1.31.1"));
        let places = SearchPlaces {
            explicit: Some(lib.clone()),
            project_dir: Some(dir.join(".weft")),
            ..Default::default()
        };
        assert_eq!(locate(&places).unwrap(), lib);

        let places = SearchPlaces {
            explicit: Some(dir.join("nope.so")),
            project_dir: Some(dir.join(".weft")),
            ..Default::default()
        };
        let err = locate(&places).unwrap_err().to_string();
        assert!(err.contains("nope.so"), "{err}");
        assert!(err.contains("does not exist"), "{err}");
        assert!(err.contains(INSTALL_CPU), "{err}");
    }

    #[test]
    fn env_before_project_folder() {
        let dir = tempdir("env");
        touch(&dir.join(".weft/onnxruntime/cpu/lib/libonnxruntime.so.1.31.1"));
        let env_lib = dir.join("envlib/libonnxruntime.so");
        touch(&env_lib);
        let places = SearchPlaces {
            env: vec![(ORT_LIB_ENV, dir.join("envlib"))],
            project_dir: Some(dir.join(".weft")),
            ..Default::default()
        };
        assert_eq!(locate(&places).unwrap(), env_lib);
    }

    #[test]
    fn project_folder_picks_highest_version_and_parents_are_never_searched() {
        let dir = tempdir("project");
        touch(&dir.join(".weft/onnxruntime/cpu/lib/libonnxruntime.so.1.9.0"));
        touch(&dir.join(".weft/onnxruntime/cpu/lib/libonnxruntime.so.1.31.1"));
        let sub = dir.join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        // A library planted in a parent's .weft is not found from below it.
        let below = SearchPlaces {
            project_dir: Some(sub.join(".weft")),
            ..Default::default()
        };
        assert!(locate(&below).is_err());
        let places = SearchPlaces {
            project_dir: Some(dir.join(".weft")),
            ..Default::default()
        };
        assert_eq!(
            locate(&places).unwrap(),
            dir.join(".weft/onnxruntime/cpu/lib/libonnxruntime.so.1.31.1")
        );
    }

    #[test]
    fn gpu_variant_preferred_only_when_asked() {
        let dir = tempdir("variant");
        touch(&dir.join(".weft/onnxruntime/cpu/lib/libonnxruntime.so"));
        touch(&dir.join(".weft/onnxruntime/gpu/lib/libonnxruntime.so"));
        let mut places = SearchPlaces {
            project_dir: Some(dir.join(".weft")),
            ..Default::default()
        };
        assert!(locate(&places).unwrap().to_string_lossy().contains("/cpu/"));
        places.prefer_gpu = true;
        assert!(locate(&places).unwrap().to_string_lossy().contains("/gpu/"));
    }

    #[test]
    fn nothing_found_lists_every_place() {
        let dir = tempdir("none");
        let exe = dir.join("bin");
        std::fs::create_dir_all(&exe).unwrap();
        let places = SearchPlaces {
            project_dir: Some(dir.join(".weft")),
            exe_dir: Some(exe.clone()),
            ..Default::default()
        };
        let err = locate(&places).unwrap_err();
        let Error::RuntimeNotFound { searched, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(searched.len(), 3, "{searched:?}");
        let msg = err.to_string();
        assert!(msg.contains("project-local"), "{msg}");
        assert!(msg.contains(&exe.display().to_string()), "{msg}");
        assert!(msg.contains(INSTALL_CPU), "{msg}");
    }
}
