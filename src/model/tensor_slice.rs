//! The one bridge from libtorch tensors to Rust slices, for the CPU kernel
//! and the CPU optimiser. The layout is checked in every build (a wrong
//! dtype, device or stride would otherwise be read as garbage); what cannot
//! be checked, that nothing writes the tensor while the slice lives, is the
//! caller's promise.
use tch::kind::Element;
use tch::{Device, Tensor};

/// Panics unless `t` holds its elements as contiguous `T`s on the CPU.
fn check<T: Element>(t: &Tensor) {
    assert!(
        t.device() == Device::Cpu && t.kind() == T::KIND && t.is_contiguous(),
        "tensor_slice: expected a contiguous {:?} CPU tensor, got {:?} on {:?} (contiguous: {})",
        T::KIND,
        t.kind(),
        t.device(),
        t.is_contiguous()
    );
}

/// The elements of a contiguous CPU tensor of `T`s.
///
/// # Safety
/// Nothing may write the tensor's storage while the slice is in use.
pub unsafe fn as_slice<T: Element>(t: &Tensor) -> &[T] {
    check::<T>(t);
    match t.numel() {
        0 => &[],
        // SAFETY: checked above to be n contiguous `T`s on the CPU; the
        // slice borrows `t`, which keeps the storage alive.
        n => std::slice::from_raw_parts(t.data_ptr() as *const T, n),
    }
}

/// The elements of a contiguous CPU tensor of `T`s, to write in place.
///
/// # Safety
/// Nothing else may read or write the tensor's storage while the slice is
/// in use (no other slice, shallow clone or graph).
#[allow(clippy::mut_from_ref)] // the storage is libtorch's, shared by design
pub unsafe fn as_mut_slice<T: Element>(t: &Tensor) -> &mut [T] {
    check::<T>(t);
    match t.numel() {
        0 => &mut [],
        // SAFETY: as in `as_slice`; exclusivity is the caller's promise.
        n => std::slice::from_raw_parts_mut(t.data_ptr() as *mut T, n),
    }
}
