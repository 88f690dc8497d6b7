//! Shared libraries opened at run time (`dlopen`): libtorch's CUDA backend,
//! the NVIDIA driver and NVRTC are found and loaded only by a run that may
//! use a GPU, so a CPU run neither needs nor maps them.
use std::ffi::{c_void, CStr, CString};

use anyhow::{bail, Result};

/// A library kept open for the life of the process (on purpose: CUDA's
/// libraries register global state, and their functions are kept).
#[derive(Clone, Copy)]
pub struct Library {
    handle: *mut c_void,
    name: &'static str,
}

// SAFETY: a dlopen handle is a process-wide token; dlsym is thread-safe.
unsafe impl Send for Library {}
unsafe impl Sync for Library {}

fn last_error() -> String {
    // SAFETY: dlerror returns a thread-local C string or null.
    let err = unsafe { libc::dlerror() };
    if err.is_null() {
        "unknown error".to_owned()
    } else {
        // SAFETY: non-null, NUL-terminated, valid until the next dl call.
        unsafe { CStr::from_ptr(err) }
            .to_string_lossy()
            .into_owned()
    }
}

impl Library {
    /// Opens `name` (a file name searched as the loader does, or a path)
    /// with its symbols global, or says why it cannot.
    pub fn open(name: &str) -> std::result::Result<Library, String> {
        let c_name = CString::new(name).map_err(|_| format!("bad library name {name:?}"))?;
        // SAFETY: dlopen with a valid C string.
        let handle = unsafe { libc::dlopen(c_name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if handle.is_null() {
            return Err(last_error());
        }
        Ok(Library {
            handle,
            name: Box::leak(name.to_owned().into_boxed_str()),
        })
    }

    /// The function `name`, typed as `F`.
    ///
    /// # Safety
    /// `F` must be the `extern "C"` function pointer type of the symbol.
    pub unsafe fn function<F: Copy>(&self, name: &CStr) -> Result<F> {
        assert_eq!(size_of::<F>(), size_of::<*mut c_void>());
        let symbol = libc::dlsym(self.handle, name.as_ptr());
        if symbol.is_null() {
            bail!("{} has no {}", self.name, name.to_string_lossy());
        }
        Ok(std::mem::transmute_copy(&symbol))
    }
}

/// The folder of a library this process has loaded whose file name is
/// `file_name` (from `/proc/self/maps`), e.g. libtorch's own folder.
pub fn loaded_folder(file_name: &str) -> Option<std::path::PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .map(std::path::Path::new)
        .find(|path| path.file_name().is_some_and(|n| n == file_name))
        .and_then(|path| path.parent().map(|p| p.to_path_buf()))
}
