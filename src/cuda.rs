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
use std::ffi::CStr;
use std::sync::OnceLock;

use anyhow::{bail, Result};

/// The NVIDIA driver's user-space library: without it there is no GPU to use.
const DRIVER: &CStr = c"libcuda.so.1";
const BACKEND: &CStr = c"libtorch_cuda.so";

static LOADED: OnceLock<std::result::Result<(), String>> = OnceLock::new();

fn dlopen(name: &CStr) -> std::result::Result<(), String> {
    // SAFETY: dlopen with a valid C string; the handle is kept open for the
    // life of the process on purpose (the backend registers global state).
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns a thread-local C string or null.
        let err = unsafe { libc::dlerror() };
        let msg = if err.is_null() {
            "unknown error".to_owned()
        } else {
            unsafe { CStr::from_ptr(err) }
                .to_string_lossy()
                .into_owned()
        };
        return Err(msg);
    }
    Ok(())
}

/// Tries once per process to load the CUDA backend; true when it is loaded.
/// False without an NVIDIA driver or without a CUDA build of libtorch.
pub fn try_load() -> bool {
    load().is_ok()
}

/// Loads the CUDA backend, or says why it cannot be loaded.
pub fn load() -> Result<()> {
    let loaded = LOADED.get_or_init(|| {
        dlopen(DRIVER).map_err(|e| format!("no NVIDIA driver ({e})"))?;
        dlopen(BACKEND).map_err(|e| format!("cannot load {} ({e})", BACKEND.to_string_lossy()))
    });
    match loaded {
        Ok(()) => Ok(()),
        Err(why) => bail!("CUDA is not available: {why}"),
    }
}
