//! Makes the binaries find libtorch at run time, and builds the C++ shim
//! that draws from libtorch's CPU generator (`src/cpu_generator.rs`).
//!
//! torch-sys (links = "tch") exports its libtorch lib folder as
//! `DEP_TCH_LIBTORCH_LIB`. We bake it into the rpath so no
//! `LD_LIBRARY_PATH` is needed, for libtorch itself and for the CUDA backend
//! (`libtorch_cuda.so`), which `src/cuda.rs` opens from there at run time
//! when a run may use a GPU instead of linking it into every run.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    // torch-sys exports it on Linux and macOS, the platforms we build on.
    let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") else {
        panic!(
            "torch-sys did not say where libtorch is (DEP_TCH_LIBTORCH_LIB): \
             gru-imdb builds on Linux or macOS, against libtorch's headers"
        );
    };
    let lib = std::path::Path::new(&lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    // As torch-sys finds the headers: under LIBTORCH_INCLUDE if set, else
    // beside the lib folder.
    println!("cargo:rerun-if-env-changed=LIBTORCH_INCLUDE");
    let headers = std::env::var_os("LIBTORCH_INCLUDE")
        .map_or_else(|| lib.join(".."), std::path::PathBuf::from);
    compile_generator_shim(&headers.join("include"));
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
}

/// `src/cpu_generator.cpp`, with the flags torch-sys builds its own C++
/// with (C++17, libtorch's C++ ABI).
fn compile_generator_shim(include: &std::path::Path) {
    println!("cargo:rerun-if-changed=src/cpu_generator.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let cxx11_abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(include)
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={cxx11_abi}"))
        .file("src/cpu_generator.cpp")
        .compile("gru_imdb_cpu_generator");
}
