//! The one bridge from libtorch tensors to Rust slices, for the CPU kernel
//! and the CPU optimiser. The layout is checked in every build (a wrong
//! dtype, device or stride would otherwise be read as garbage); what cannot
//! be checked, that nothing writes the tensor while the slice lives, is the
//! caller's promise.
use tch::{Device, Kind, Tensor};

fn check(t: &Tensor, kind: Kind) {
    assert!(
        t.device() == Device::Cpu && t.kind() == kind && t.is_contiguous(),
        "tensor_slice: expected a contiguous {kind:?} CPU tensor, got {:?} on {:?} (contiguous: {})",
        t.kind(),
        t.device(),
        t.is_contiguous()
    );
}

/// The elements of a contiguous f32 CPU tensor.
///
/// # Safety
/// Nothing may write the tensor's storage while the slice is in use.
pub unsafe fn f32_slice(t: &Tensor) -> &[f32] {
    check(t, Kind::Float);
    let n = t.numel();
    if n == 0 {
        return &[];
    }
    // SAFETY: checked above to be n contiguous f32 values on the CPU; the
    // slice borrows `t`, which keeps the storage alive.
    std::slice::from_raw_parts(t.data_ptr() as *const f32, n)
}

/// The elements of a contiguous f32 CPU tensor, to write in place.
///
/// # Safety
/// Nothing else may read or write the tensor's storage while the slice is
/// in use (no other slice, shallow clone or graph).
#[allow(clippy::mut_from_ref)] // the storage is libtorch's, shared by design
pub unsafe fn f32_slice_mut(t: &Tensor) -> &mut [f32] {
    check(t, Kind::Float);
    let n = t.numel();
    if n == 0 {
        return &mut [];
    }
    // SAFETY: as in `f32_slice`; exclusivity is the caller's promise.
    std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, n)
}

/// The elements of a contiguous i64 CPU tensor.
///
/// # Safety
/// As for [`f32_slice`].
pub unsafe fn i64_slice(t: &Tensor) -> &[i64] {
    check(t, Kind::Int64);
    let n = t.numel();
    if n == 0 {
        return &[];
    }
    // SAFETY: as in `f32_slice`, for i64.
    std::slice::from_raw_parts(t.data_ptr() as *const i64, n)
}
