//! The few calls of the CUDA driver API the kernels need, loaded from
//! `libcuda.so.1` at run time. Modules are loaded into the device's
//! primary context, the one libtorch's runtime uses, and kernels are
//! launched on the legacy default stream (libtorch's stream too, tch having
//! no stream API), so they are ordered with libtorch's own work on the
//! device and their pointers are libtorch's allocations.
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};

use anyhow::{bail, Result};

use super::loaded::LoadedOnce;
use crate::cuda::DRIVER;
use crate::dynlib::Library;

type CuResult = c_int;
type RawContext = *mut c_void;
type RawModule = *mut c_void;
type RawFunction = *mut c_void;

const MULTIPROCESSOR_COUNT: c_int = 16;
const COMPUTE_CAPABILITY_MAJOR: c_int = 75;
const COMPUTE_CAPABILITY_MINOR: c_int = 76;

struct Api {
    init: unsafe extern "C" fn(c_uint) -> CuResult,
    device_get: unsafe extern "C" fn(*mut c_int, c_int) -> CuResult,
    device_get_attribute: unsafe extern "C" fn(*mut c_int, c_int, c_int) -> CuResult,
    primary_context_retain: unsafe extern "C" fn(*mut RawContext, c_int) -> CuResult,
    context_set_current: unsafe extern "C" fn(RawContext) -> CuResult,
    module_load_data: unsafe extern "C" fn(*mut RawModule, *const c_void) -> CuResult,
    module_get_function:
        unsafe extern "C" fn(*mut RawFunction, RawModule, *const c_char) -> CuResult,
    #[allow(clippy::type_complexity)]
    launch_kernel: unsafe extern "C" fn(
        RawFunction,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        *mut c_void,
        *mut *mut c_void,
        *mut *mut c_void,
    ) -> CuResult,
    get_error_string: unsafe extern "C" fn(CuResult, *mut *const c_char) -> CuResult,
}

fn load_api() -> Result<Api> {
    let lib = Library::open(DRIVER).map_err(|e| anyhow::anyhow!("no NVIDIA driver ({e})"))?;
    // SAFETY: each type is the signature of the driver API function named
    // (cuda.h, CUDA 12/13; the `_v2` names are the current ABI).
    unsafe {
        let api = Api {
            init: lib.function(c"cuInit")?,
            device_get: lib.function(c"cuDeviceGet")?,
            device_get_attribute: lib.function(c"cuDeviceGetAttribute")?,
            primary_context_retain: lib.function(c"cuDevicePrimaryCtxRetain")?,
            context_set_current: lib.function(c"cuCtxSetCurrent")?,
            module_load_data: lib.function(c"cuModuleLoadData")?,
            module_get_function: lib.function(c"cuModuleGetFunction")?,
            launch_kernel: lib.function(c"cuLaunchKernel")?,
            get_error_string: lib.function(c"cuGetErrorString")?,
        };
        check(&api, (api.init)(0), "cuInit")?;
        Ok(api)
    }
}

fn api() -> Result<&'static Api> {
    static API: LoadedOnce<(), Api> = LoadedOnce::new();
    API.get((), load_api)
}

fn check(api: &Api, result: CuResult, call: &str) -> Result<()> {
    if result == 0 {
        return Ok(());
    }
    let mut text: *const c_char = std::ptr::null();
    // SAFETY: cuGetErrorString writes a static string or leaves null.
    unsafe { (api.get_error_string)(result, &mut text) };
    let text = if text.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: a static NUL-terminated string of the driver.
        unsafe { CStr::from_ptr(text) }.to_string_lossy()
    };
    bail!("{call} failed: {text} (CUDA error {result})")
}

/// A GPU's primary context, made current on the calling thread.
#[derive(Clone, Copy)]
pub struct Gpu {
    context: RawContext,
    pub ordinal: usize,
    /// Compute capability as `major * 10 + minor`, e.g. 90 for an H100.
    pub compute_capability: u32,
    pub multiprocessors: u32,
}

// SAFETY: driver handles are process-wide; the driver API is thread-safe.
unsafe impl Send for Gpu {}
unsafe impl Sync for Gpu {}

impl Gpu {
    /// GPU `ordinal` (as libtorch numbers them: both follow
    /// `CUDA_VISIBLE_DEVICES`).
    pub fn open(ordinal: usize) -> Result<Gpu> {
        let api = api()?;
        let mut device = 0;
        let mut context = std::ptr::null_mut();
        // SAFETY: out-pointer to a local.
        unsafe {
            check(
                api,
                (api.device_get)(&mut device, ordinal as c_int),
                "cuDeviceGet",
            )?;
        }
        let attribute = |attribute| -> Result<u32> {
            let mut value = 0;
            // SAFETY: out-pointer to a local; `device` is a valid handle.
            check(
                api,
                unsafe { (api.device_get_attribute)(&mut value, attribute, device) },
                "cuDeviceGetAttribute",
            )?;
            Ok(value as u32)
        };
        let gpu = Gpu {
            context: std::ptr::null_mut(),
            ordinal,
            compute_capability: attribute(COMPUTE_CAPABILITY_MAJOR)? * 10
                + attribute(COMPUTE_CAPABILITY_MINOR)?,
            multiprocessors: attribute(MULTIPROCESSOR_COUNT)?,
        };
        // SAFETY: out-pointer to a local; the retained context is kept for
        // the life of the process.
        unsafe {
            check(
                api,
                (api.primary_context_retain)(&mut context, device),
                "cuDevicePrimaryCtxRetain",
            )?;
        }
        let gpu = Gpu { context, ..gpu };
        gpu.make_current()?;
        Ok(gpu)
    }

    fn make_current(&self) -> Result<()> {
        let api = api()?;
        // SAFETY: a context this process retained.
        check(
            api,
            unsafe { (api.context_set_current)(self.context) },
            "cuCtxSetCurrent",
        )
    }

    /// Loads a CUBIN into this GPU's primary context.
    pub fn load_module(&self, cubin: &[u8]) -> Result<Module> {
        let api = api()?;
        self.make_current()?;
        let mut module = std::ptr::null_mut();
        // SAFETY: `cubin` is a complete CUBIN image, read during the call.
        check(
            api,
            unsafe { (api.module_load_data)(&mut module, cubin.as_ptr().cast()) },
            "cuModuleLoadData",
        )?;
        Ok(Module { gpu: *self, module })
    }
}

/// A loaded module; kept for the life of the process.
pub struct Module {
    gpu: Gpu,
    module: RawModule,
}

// SAFETY: as for `Gpu`.
unsafe impl Send for Module {}
unsafe impl Sync for Module {}

impl Module {
    pub fn function(&self, name: &str) -> Result<Kernel> {
        let api = api()?;
        let c_name = CString::new(name)?;
        let mut function = std::ptr::null_mut();
        // SAFETY: out-pointer to a local; a loaded module.
        check(
            api,
            unsafe { (api.module_get_function)(&mut function, self.module, c_name.as_ptr()) },
            &format!("cuModuleGetFunction({name})"),
        )?;
        Ok(Kernel {
            gpu: self.gpu,
            function,
        })
    }
}

/// A kernel of a loaded module.
#[derive(Clone, Copy)]
pub struct Kernel {
    gpu: Gpu,
    function: RawFunction,
}

// SAFETY: as for `Gpu`.
unsafe impl Send for Kernel {}
unsafe impl Sync for Kernel {}

/// A launch's grid and block.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    pub grid: (u32, u32),
    pub block: u32,
}

impl Kernel {
    /// Launches on the legacy default stream, asynchronously.
    ///
    /// # Safety
    /// `args` must point at one value per kernel parameter, each of the
    /// parameter's type, and every device pointer among them must be valid
    /// for what the kernel reads and writes until the work completes.
    pub unsafe fn launch(&self, geometry: Geometry, args: &mut [*mut c_void]) -> Result<()> {
        let api = api()?;
        self.gpu.make_current()?;
        let (x, y) = geometry.grid;
        check(
            api,
            (api.launch_kernel)(
                self.function,
                x,
                y,
                1,
                geometry.block,
                1,
                1,
                0,
                std::ptr::null_mut(),
                args.as_mut_ptr(),
                std::ptr::null_mut(),
            ),
            "cuLaunchKernel",
        )
    }
}
