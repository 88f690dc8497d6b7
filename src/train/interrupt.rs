//! Ctrl-C and SIGTERM during training: the first asks the run to stop at
//! the end of the current step (it then saves a checkpoint and exits with
//! status 130); a second one exits at once.
use std::sync::atomic::{AtomicUsize, Ordering};

static SIGNALS: AtomicUsize = AtomicUsize::new(0);

const FIRST: &[u8] =
    b"\nInterrupted: finishing the current step and saving a checkpoint (interrupt again to stop at once)\n";

extern "C" fn on_signal(_: libc::c_int) {
    if SIGNALS.fetch_add(1, Ordering::SeqCst) == 0 {
        // SAFETY: write(2) is async-signal-safe; the buffer is static.
        unsafe { libc::write(2, FIRST.as_ptr().cast(), FIRST.len()) };
    } else {
        // SAFETY: _exit is async-signal-safe and ends the process at once.
        unsafe { libc::_exit(130) };
    }
}

/// Routes SIGINT and SIGTERM to [`requested`] from now on.
pub fn install() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a plain handler, an empty mask and
        // SA_RESTART (so interrupted reads and writes carry on) is valid.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// Whether an interrupt asked the run to stop.
pub fn requested() -> bool {
    SIGNALS.load(Ordering::SeqCst) > 0
}
