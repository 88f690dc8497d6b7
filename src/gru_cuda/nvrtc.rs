//! CUDA C++ to CUBIN at run time with NVRTC, the compiler library that the
//! torch wheel installs beside libtorch (`nvidia/cu13/lib`), so no CUDA
//! toolkit is needed. CUBIN for the card's exact compute capability rather
//! than PTX: PTX from a newer NVRTC can be refused by an older driver.
//! Results are cached on disk by a hash of the source, the options and the
//! NVRTC version (`cache_path`, `store`), so a run compiles only what no
//! earlier run compiled.
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::loaded::LoadedOnce;
use crate::atomic::write_atomically;
use crate::dynlib::{loaded_folder, Library};

type Program = *mut c_void;
type NvrtcResult = c_int;

struct Api {
    version: unsafe extern "C" fn(*mut c_int, *mut c_int) -> NvrtcResult,
    create_program: unsafe extern "C" fn(
        *mut Program,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> NvrtcResult,
    compile_program: unsafe extern "C" fn(Program, c_int, *const *const c_char) -> NvrtcResult,
    get_program_log_size: unsafe extern "C" fn(Program, *mut usize) -> NvrtcResult,
    get_program_log: unsafe extern "C" fn(Program, *mut c_char) -> NvrtcResult,
    get_cubin_size: unsafe extern "C" fn(Program, *mut usize) -> NvrtcResult,
    get_cubin: unsafe extern "C" fn(Program, *mut c_char) -> NvrtcResult,
    destroy_program: unsafe extern "C" fn(*mut Program) -> NvrtcResult,
    get_error_string: unsafe extern "C" fn(NvrtcResult) -> *const c_char,
}

const LIBRARY: &str = "libnvrtc.so.13";
/// NVRTC opens this by name when it compiles; the loader finds it only if
/// it is on the search path or already loaded, so it is loaded first.
const BUILTINS: &str = "libnvrtc-builtins.so.13.0";

/// Where to look for NVRTC, as folders (`None`: the loader's own search,
/// e.g. an `LD_LIBRARY_PATH`): then the torch wheel's layout next to the
/// libtorch this process runs on (`torch/lib/../../nvidia/cu13/lib`).
fn folders() -> Vec<Option<PathBuf>> {
    let wheel = loaded_folder("libc10.so").map(|lib| lib.join("../../nvidia/cu13/lib"));
    vec![None, wheel]
}

/// NVRTC and its builtins from the first folder that has both.
fn open_library() -> Result<Library> {
    let in_folder = |folder: &Option<PathBuf>, name: &str| match folder {
        None => name.to_owned(),
        Some(folder) => folder.join(name).to_string_lossy().into_owned(),
    };
    let mut failures = Vec::new();
    for folder in folders() {
        let opened = Library::open(&in_folder(&folder, BUILTINS))
            .and_then(|_| Library::open(&in_folder(&folder, LIBRARY)));
        match opened {
            Ok(library) => return Ok(library),
            Err(why) => failures.push(why),
        }
    }
    bail!("NVRTC not found: {}", failures.join("; "))
}

fn load_api() -> Result<Api> {
    let lib = open_library()?;
    // SAFETY: the signatures of nvrtc.h (CUDA 13).
    unsafe {
        Ok(Api {
            version: lib.function(c"nvrtcVersion")?,
            create_program: lib.function(c"nvrtcCreateProgram")?,
            compile_program: lib.function(c"nvrtcCompileProgram")?,
            get_program_log_size: lib.function(c"nvrtcGetProgramLogSize")?,
            get_program_log: lib.function(c"nvrtcGetProgramLog")?,
            get_cubin_size: lib.function(c"nvrtcGetCUBINSize")?,
            get_cubin: lib.function(c"nvrtcGetCUBIN")?,
            destroy_program: lib.function(c"nvrtcDestroyProgram")?,
            get_error_string: lib.function(c"nvrtcGetErrorString")?,
        })
    }
}

fn api() -> Result<&'static Api> {
    static API: LoadedOnce<(), Api> = LoadedOnce::new();
    API.get((), load_api)
}

fn check(api: &Api, result: NvrtcResult, call: &str) -> Result<()> {
    if result == 0 {
        return Ok(());
    }
    // SAFETY: returns a static NUL-terminated string.
    let text = unsafe { CStr::from_ptr((api.get_error_string)(result)) };
    bail!("{call} failed: {}", text.to_string_lossy())
}

/// NVRTC's version, e.g. (13, 0).
pub fn version() -> Result<(i32, i32)> {
    let api = api()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: out-pointers to locals.
    check(
        api,
        unsafe { (api.version)(&mut major, &mut minor) },
        "nvrtcVersion",
    )?;
    Ok((major, minor))
}

/// A compiled program: the CUBIN, and the compiler's log (warnings, and
/// with `--ptxas-options=-v` the registers and spills of each kernel).
pub struct Compiled {
    pub cubin: Vec<u8>,
    pub log: String,
}

/// Compiles `source` for `sm_<arch>` with `options` (e.g. `-DUNITS=64`).
pub fn compile(source: &str, name: &str, arch: u32, options: &[String]) -> Result<Compiled> {
    let api = api()?;
    let c_source = CString::new(source)?;
    let c_name = CString::new(name)?;
    let mut all = vec![
        format!("--gpu-architecture=sm_{arch}"),
        "--std=c++17".into(),
    ];
    all.extend(options.iter().cloned());
    let c_options: Vec<CString> = all
        .iter()
        .map(|o| CString::new(o.as_str()))
        .collect::<Result<_, _>>()?;
    let pointers: Vec<*const c_char> = c_options.iter().map(|o| o.as_ptr()).collect();
    let mut program = std::ptr::null_mut();
    // SAFETY: valid C strings alive for the calls; the program is destroyed
    // below on every path.
    unsafe {
        check(
            api,
            (api.create_program)(
                &mut program,
                c_source.as_ptr(),
                c_name.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            ),
            "nvrtcCreateProgram",
        )?;
        let compiled = (api.compile_program)(program, pointers.len() as c_int, pointers.as_ptr());
        let log = program_log(api, program);
        let result = check(api, compiled, "nvrtcCompileProgram")
            .with_context(|| {
                format!(
                    "compiling {name} for sm_{arch}:\n{}",
                    log.as_deref().unwrap_or("")
                )
            })
            .and_then(|()| cubin(api, program));
        (api.destroy_program)(&mut program);
        Ok(Compiled {
            cubin: result?,
            log: log.unwrap_or_default(),
        })
    }
}

/// # Safety
/// `program` must be a live program.
unsafe fn program_log(api: &Api, program: Program) -> Option<String> {
    let mut size = 0;
    if (api.get_program_log_size)(program, &mut size) != 0 {
        return None;
    }
    let mut log = vec![0u8; size];
    if (api.get_program_log)(program, log.as_mut_ptr().cast()) != 0 {
        return None;
    }
    let text = CStr::from_bytes_until_nul(&log).ok()?;
    Some(text.to_string_lossy().into_owned())
}

/// # Safety
/// `program` must be a live, compiled program.
unsafe fn cubin(api: &Api, program: Program) -> Result<Vec<u8>> {
    let mut size = 0;
    check(
        api,
        (api.get_cubin_size)(program, &mut size),
        "nvrtcGetCUBINSize",
    )?;
    let mut cubin = vec![0u8; size];
    check(
        api,
        (api.get_cubin)(program, cubin.as_mut_ptr().cast()),
        "nvrtcGetCUBIN",
    )?;
    Ok(cubin)
}

/// `$XDG_CACHE_HOME/gru-imdb/cubin`, or `~/.cache/gru-imdb/cubin`.
fn cache_folder() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("gru-imdb").join("cubin"))
}

/// Where the CUBIN of `source` compiled for `sm_<arch>` with `options` is
/// cached: a file named by a hash of all that and NVRTC's version, or
/// `None` without a cache folder.
pub fn cache_path(
    source: &str,
    name: &str,
    arch: u32,
    options: &[String],
) -> Result<Option<PathBuf>> {
    let (major, minor) = version()?;
    let mut hash = Sha256::new();
    for part in [source, name, &arch.to_string(), &format!("{major}.{minor}")] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    for option in options {
        hash.update(option.as_bytes());
        hash.update([0]);
    }
    let key = hex::encode(hash.finalize());
    Ok(cache_folder().map(|folder| folder.join(format!("{name}-sm_{arch}-{key}.cubin"))))
}

/// Stores a CUBIN in the cache, atomically, after the sha256 of its bytes.
/// Best effort: a folder that cannot be written only means compiling again
/// next time.
pub fn store(path: &Path, cubin: &[u8]) {
    let digest = Sha256::digest(cubin);
    let _ = path
        .parent()
        .map_or(Ok(None), crate::disk::create_dir_all)
        .map(drop)
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            write_atomically(path, |out| {
                out.write_all(&digest)?;
                out.write_all(cubin)
            })
        });
}

/// The CUBIN [`store`] left at `path`, if it is there and whole. The driver
/// trusts a CUBIN's own sizes (`cuModuleLoadData` takes no length), so a
/// damaged file must never reach it: given a CUBIN cut to 100 bytes, a run
/// on an H100 ended at once without a word (seen once).
pub fn read_cached(path: &Path) -> Option<Vec<u8>> {
    let file = std::fs::read(path).ok()?;
    let (digest, cubin) = file.split_at_checked(32)?;
    (Sha256::digest(cubin).as_slice() == digest).then(|| cubin.to_vec())
}
