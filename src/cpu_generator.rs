//! libtorch's default CPU generator, drawn from without a tensor.
//!
//! [`uniform`] gives exactly the numbers that `Tensor::rand` of as many
//! elements gives, and leaves the generator exactly as that would: on the
//! CPU, libtorch's `uniform_` is a serial loop of one 32-bit draw of the
//! generator's MT19937 per element, and the C++ shim `cpu_generator.cpp`
//! (built by `build.rs` against libtorch's headers) runs that same header
//! code on a copy of the engine, under the generator's lock, and stores the
//! engine back. What it skips is the op around the loop (dispatch and a
//! tensor) and, for the dropout masks (`model::gru`), the comparison,
//! conversion and division ops after it.
//!
//! `tests/model.rs` checks the masks and the generator's state afterwards
//! against libtorch's own `bernoulli`.

extern "C" {
    fn gru_imdb_cpu_uniform(out: *mut f32, n: i64) -> i32;
}

/// Fills `out` with the next `out.len()` numbers of `Tensor::rand` on the
/// CPU (uniform in [0, 1), multiples of 2^-24).
pub(crate) fn uniform(out: &mut [f32]) {
    let n = i64::try_from(out.len()).expect("a slice has fewer than 2^63 elements");
    // SAFETY: the shim writes exactly `n` floats from `out`'s start, and
    // keeps no pointer after it returns.
    let failed = unsafe { gru_imdb_cpu_uniform(out.as_mut_ptr(), n) };
    assert_eq!(
        failed, 0,
        "libtorch's default CPU generator could not be drawn from"
    );
}
