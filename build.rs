//! Makes the binaries find libtorch at run time and register CUDA.
//!
//! torch-sys (links = "tch") exports its libtorch lib folder as
//! `DEP_TCH_LIBTORCH_LIB`. We bake it into the rpath so no
//! `LD_LIBRARY_PATH` is needed, and link `torch_cuda` with `--no-as-needed`
//! when it exists: nothing references its symbols directly, so the linker
//! would drop it and CUDA would never register on GPU machines.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from) else {
        // torch-sys always exports it for dynamic builds; without it there is
        // nothing to add.
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-L{}", lib.display());
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
