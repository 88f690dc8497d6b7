//! Denormal floats flushed to zero for a scope, as TensorFlow runs its CPU
//! kernels (`port::ScopedFlushDenormal`, so Keras's Adam too).
//!
//! Keras's Adam decays the moments of every row that a step does not look
//! up: `m` by 0.9 a step reaches the denormal range (below 1.2e-38) after
//! some 800 steps without the row, one epoch of IMDB. An Intel core takes
//! a microcode assist of about 100 cycles for each denormal operand, so on
//! a Xeon the second epoch's Adam at `--max-features 80000` took 6.0-6.4 s
//! against 3.7-4.2 s for the first. With the flush the arithmetic sees a
//! zero. What it changes is below every weight's last bit: a denormal `m`
//! moves a weight by `alpha m / (sqrt(v) + epsilon)`, under 1e-30, and adds
//! under 1e-38 to the next gradient's share of `m`; the histories keep
//! their bits (the pinned seed tests), only the saved moments hold zeros
//! where they held denormals.
//!
//! The MXCSR register is per thread: the guard sets FTZ (results) and DAZ
//! (operands) on the thread that makes it and restores the register when
//! dropped, so the kernels that share the pool's threads see it unchanged.

/// While alive, this thread's SSE/AVX arithmetic flushes denormals.
pub(super) struct FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

/// MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6).
#[cfg(target_arch = "x86_64")]
const FTZ_DAZ: u32 = 0x8040;

impl FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    pub(super) fn new() -> FlushDenormals {
        let saved = read_mxcsr();
        write_mxcsr(saved | FTZ_DAZ);
        FlushDenormals { saved }
    }

    /// Elsewhere denormals stay as they are.
    #[cfg(not(target_arch = "x86_64"))]
    pub(super) fn new() -> FlushDenormals {
        FlushDenormals {}
    }
}

#[cfg(target_arch = "x86_64")]
impl Drop for FlushDenormals {
    fn drop(&mut self) {
        write_mxcsr(self.saved);
    }
}

#[cfg(target_arch = "x86_64")]
fn read_mxcsr() -> u32 {
    let mut value = 0u32;
    // SAFETY: stores the 32-bit MXCSR into a local of that size.
    unsafe {
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut value, options(nostack, preserves_flags));
    }
    value
}

#[cfg(target_arch = "x86_64")]
fn write_mxcsr(value: u32) {
    // SAFETY: loads MXCSR from a local; callers pass a value read from
    // MXCSR with only the FTZ and DAZ bits changed, both valid on every
    // x86_64 CPU with SSE2.
    unsafe {
        std::arch::asm!("ldmxcsr [{}]", in(reg) &value, options(nostack, readonly, preserves_flags));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denormals_are_zero_inside_the_scope_only() {
        let tiny = std::hint::black_box(1e-39f32);
        assert!(tiny.is_subnormal());
        let halved = |x: f32| std::hint::black_box(x) * std::hint::black_box(0.5f32);
        {
            let _flush = FlushDenormals::new();
            #[cfg(target_arch = "x86_64")]
            assert_eq!(halved(tiny), 0.0);
        }
        assert_eq!(halved(tiny), 5e-40);
    }
}
