//! Loads libtorch's CUDA backend only when a run may use a GPU.
//!
//! `libtorch_cuda.so` registers CUDA with libtorch from its static
//! initialisers, so nothing references its symbols and a plain link would
//! drop it. Linking it unconditionally (`--no-as-needed`) works, but then
//! every run, CPU-only ones included, maps the whole CUDA stack (cuDNN,
//! cuBLAS, ...): about 350 MiB more resident memory and 0.3 s more start-up,
//! measured. So the binary carries an rpath to libtorch's folder, and a run
//! that may use a GPU opens the backend here, before the first libtorch call
//! asks whether CUDA exists.
use std::sync::OnceLock;

use anyhow::{bail, Result};

use crate::dynlib::Library;

/// The NVIDIA driver's user-space library: without it there is no GPU to use.
pub const DRIVER: &str = "libcuda.so.1";
const BACKEND: &str = "libtorch_cuda.so";

static LOADED: OnceLock<std::result::Result<(), String>> = OnceLock::new();

/// Tries once per process to load the CUDA backend; true when it is loaded.
/// False without an NVIDIA driver or without a CUDA build of libtorch.
pub fn try_load() -> bool {
    load().is_ok()
}

/// Loads the CUDA backend, or says why it cannot be loaded.
pub fn load() -> Result<()> {
    let loaded = LOADED.get_or_init(|| {
        Library::open(DRIVER).map_err(|e| format!("no NVIDIA driver ({e})"))?;
        Library::open(BACKEND).map_err(|e| format!("cannot load {BACKEND} ({e})"))?;
        Ok(())
    });
    match loaded {
        Ok(()) => Ok(()),
        Err(why) => bail!("CUDA is not available: {why}"),
    }
}
