//! Makes the binaries find libtorch at run time.
//!
//! torch-sys (links = "tch") exports its libtorch lib folder as
//! `DEP_TCH_LIBTORCH_LIB`. We bake it into the rpath so no
//! `LD_LIBRARY_PATH` is needed, for libtorch itself and for the CUDA backend
//! (`libtorch_cuda.so`), which `src/cuda.rs` opens from there at run time
//! when a run may use a GPU instead of linking it into every run.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    // torch-sys always exports it for dynamic builds; without it there is
    // nothing to add.
    if let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") {
        let lib = std::path::Path::new(&lib);
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        // The torch wheel's version, for the results a run records.
        let version_py = lib.join("../version.py");
        println!("cargo:rerun-if-changed={}", version_py.display());
        let version = std::fs::read_to_string(&version_py)
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("__version__ = "))
                    .map(|v| v.trim_matches(|c| c == '\'' || c == '"').to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        println!("cargo:rustc-env=GRU_IMDB_LIBTORCH_VERSION={version}");
    } else {
        println!("cargo:rustc-env=GRU_IMDB_LIBTORCH_VERSION=unknown");
    }
}
