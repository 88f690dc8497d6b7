//! A persistent pool of worker threads for fork-join calls: the GRU
//! kernel's and the optimiser's.
//!
//! Spawning and joining a scoped thread costs 65-95 us on the 2-core VM
//! this was tuned on (measured). Waking a thread that sleeps on a condition
//! variable is cheaper, but not cheap once its core has gone idle: on the
//! 2-core AMD EPYC VM (Zen 5), after 150 us on other work, a sleeping
//! worker took 40-50 us on average to start a job posted to it (measured:
//! two 100 us jobs took 146 us, two 20 us jobs 73 us, longer than running
//! both on the caller). A training step makes three calls with libtorch's
//! single-threaded work between them, so that was about 0.1 s an epoch.
//! So both sides first spin for up to [`SPIN`] watching an atomic, and only
//! then sleep: a worker between the calls of a step, the caller for the
//! workers' last jobs. A spinning worker uses its own core only, which
//! libtorch (one thread beside this layer) leaves idle. The caller claims
//! jobs too, so no job ever waits for a slow wake-up.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// How long a worker watches for the next call, and the caller for the
/// workers' last jobs, before sleeping: longer than the gaps between the
/// calls of a training step (libtorch's work between them, 0.1-0.3 ms).
const SPIN: Duration = Duration::from_millis(1);

/// Runs `f` on every job in parallel: the first on the calling thread,
/// the others on the persistent workers (see [`run`]).
pub(crate) fn run_parallel<J: Send>(jobs: Vec<J>, f: impl Fn(J) + Sync) {
    if jobs.len() <= 1 {
        jobs.into_iter().for_each(f);
        return;
    }
    let slots: Vec<Mutex<Option<J>>> = jobs.into_iter().map(|j| Mutex::new(Some(j))).collect();
    run(slots.len(), &|i| {
        let job = slots[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(job) = job {
            f(job);
        }
    });
}

/// The job function, with its lifetime erased (see the SAFETY argument in
/// [`run`]).
#[derive(Clone, Copy)]
struct JobFn(*const (dyn Fn(usize) + Sync));

// SAFETY: the pointee is `Sync`, and `run` keeps it alive for as long as any
// worker can reach it.
unsafe impl Send for JobFn {}

#[derive(Default)]
struct State {
    /// The current call's job; `None` between calls.
    job: Option<JobFn>,
    /// Indices `next..n_jobs` are still unclaimed.
    next: usize,
    n_jobs: usize,
    /// Jobs claimed by workers and not finished yet.
    running: usize,
    panicked: bool,
    workers: usize,
}

struct Pool {
    state: Mutex<State>,
    /// Workers wait here for a job.
    work: Condvar,
    /// The caller waits here for the workers' last jobs.
    done: Condvar,
    /// Held for a whole call: one call at a time uses the pool.
    busy: Mutex<()>,
    /// Counts the calls that posted a job: what a spinning worker watches.
    posted: AtomicU64,
    /// `State::running`, for a spinning caller to watch (written under the
    /// lock; the lock's value is the one that counts).
    running: AtomicUsize,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A job's panic is caught outside the lock, so a poisoned lock still
    // guards consistent state.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(State::default()),
        work: Condvar::new(),
        done: Condvar::new(),
        busy: Mutex::new(()),
        posted: AtomicU64::new(0),
        running: AtomicUsize::new(0),
    })
}

/// Spins until `ready()` or for [`SPIN`], whichever is first.
fn spin_until(ready: impl Fn() -> bool) {
    let start = Instant::now();
    loop {
        // Reading the clock costs more than a look at an atomic.
        for _ in 0..64 {
            if ready() {
                return;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= SPIN {
            return;
        }
    }
}

/// Claims the next unclaimed index of the current job, if any.
fn claim(st: &mut State) -> Option<(JobFn, usize)> {
    let job = st.job?;
    (st.next < st.n_jobs).then(|| {
        st.next += 1;
        (job, st.next - 1)
    })
}

fn worker(p: &'static Pool) {
    let mut st = lock(&p.state);
    loop {
        match claim(&mut st) {
            Some((job, i)) => {
                st.running += 1;
                p.running.store(st.running, Ordering::Release);
                drop(st);
                // SAFETY: `run` does not return (so the closure stays alive)
                // until `running` is back to 0 and every index is claimed.
                let ok = panic::catch_unwind(AssertUnwindSafe(|| unsafe { (*job.0)(i) })).is_ok();
                st = lock(&p.state);
                st.running -= 1;
                p.running.store(st.running, Ordering::Release);
                st.panicked |= !ok;
                if st.running == 0 {
                    p.done.notify_all();
                }
            }
            None => {
                let seen = p.posted.load(Ordering::Relaxed);
                drop(st);
                spin_until(|| p.posted.load(Ordering::Acquire) != seen);
                st = lock(&p.state);
                // `run` posts under this lock: if nothing came since
                // `seen`, no call can post before the wait releases it.
                if p.posted.load(Ordering::Relaxed) == seen {
                    st = p.work.wait(st).unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }
}

/// Runs `f(0)`, ..., `f(n_jobs - 1)` in parallel on the calling thread and
/// up to `n_jobs - 1` pool workers; returns when all have finished. A panic
/// in any job is re-raised here after all jobs have finished.
pub(crate) fn run(n_jobs: usize, f: &(dyn Fn(usize) + Sync)) {
    run_beside(n_jobs, n_jobs.saturating_sub(1), f, || ());
}

/// Runs `here` on the calling thread while a pool worker runs `there`, or
/// `there` on the calling thread after `here` when the pool is in use;
/// returns both results. For two different pieces of work, where [`run`]
/// splits one: the caller's must stay on the calling thread (libtorch's
/// autograd state is per thread), the worker's must be `Send`. A panic in
/// either is re-raised here after both have finished.
pub(crate) fn join<A, B: Send>(
    here: impl FnOnce() -> A,
    there: impl FnOnce() -> B + Send,
) -> (A, B) {
    let there = Mutex::new(Some(there));
    let result = Mutex::new(None);
    let a = run_beside(
        1,
        1,
        &|_| {
            let job = there.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(job) = job {
                *result.lock().unwrap_or_else(PoisonError::into_inner) = Some(job());
            }
        },
        here,
    );
    let b = result.into_inner().unwrap_or_else(PoisonError::into_inner);
    (a, b.expect("run_beside runs every job before it returns"))
}

/// Posts `f(0)`, ..., `f(n_jobs - 1)` to up to `workers` pool workers,
/// runs `here` on the calling thread, then claims the jobs still unclaimed
/// and waits for the workers' last ones. A panic in `here` or any job is
/// re-raised after all jobs have finished.
fn run_beside<R>(
    n_jobs: usize,
    workers: usize,
    f: &(dyn Fn(usize) + Sync),
    here: impl FnOnce() -> R,
) -> R {
    let p = pool();
    // Re-entrant or concurrent use: run everything here, one after another.
    let Ok(_busy) = p.busy.try_lock() else {
        let r = here();
        (0..n_jobs).for_each(f);
        return r;
    };
    {
        let mut st = lock(&p.state);
        while st.workers < workers {
            std::thread::Builder::new()
                .name("gru_cpu".into())
                .spawn(move || worker(p))
                .expect("gru_cpu: cannot start a worker thread");
            st.workers += 1;
        }
        // SAFETY: erases the lifetime of `f`. Workers dereference it only
        // between claiming an index (while `job` is set) and decrementing
        // `running`; below, this function waits until every index is claimed
        // and `running` is 0, then clears `job`, before returning or
        // unwinding (the jobs' panics and `here`'s are caught).
        let erased: *const (dyn Fn(usize) + Sync + 'static) =
            unsafe { std::mem::transmute(f as *const (dyn Fn(usize) + Sync)) };
        st.job = Some(JobFn(erased));
        st.next = 0;
        st.n_jobs = n_jobs;
        st.panicked = false;
        p.posted.fetch_add(1, Ordering::Release);
    }
    p.work.notify_all();
    let mine = panic::catch_unwind(AssertUnwindSafe(here));
    let mut payload = None;
    loop {
        let claimed = claim(&mut lock(&p.state));
        let Some((_, i)) = claimed else { break };
        if let Err(e) = panic::catch_unwind(AssertUnwindSafe(|| f(i))) {
            payload.get_or_insert(e);
        }
    }
    spin_until(|| p.running.load(Ordering::Acquire) == 0);
    let mut st = lock(&p.state);
    while st.running > 0 {
        st = p.done.wait(st).unwrap_or_else(PoisonError::into_inner);
    }
    st.job = None;
    let worker_panicked = st.panicked;
    drop(st);
    let mine = match mine {
        Ok(r) => r,
        Err(e) => panic::resume_unwind(e),
    };
    if let Some(e) = payload {
        panic::resume_unwind(e);
    }
    if worker_panicked {
        panic!("gru_cpu: a job on a worker thread panicked");
    }
    mine
}

#[cfg(test)]
mod tests {
    use super::{join, run};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_job_runs_once_and_panics_propagate() {
        for n in [1, 2, 3, 7] {
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            run(n, &|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
        for bad in [0, 1] {
            let r = std::panic::catch_unwind(|| run(2, &|i| assert_ne!(i, bad, "job {i} fails")));
            assert!(r.is_err(), "the panic of job {bad} must reach the caller");
        }
        // Still usable afterwards.
        let count = AtomicUsize::new(0);
        run(2, &|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn join_runs_the_first_on_the_calling_thread_and_returns_both() {
        let caller = std::thread::current().id();
        let (here, there) = join(|| std::thread::current().id(), || 7);
        assert_eq!(here, caller);
        assert_eq!(there, 7);
        for bad in [0, 1] {
            let r = std::panic::catch_unwind(|| {
                join(
                    || assert_ne!(bad, 0, "here fails"),
                    || assert_ne!(bad, 1, "there fails"),
                )
            });
            assert!(
                r.is_err(),
                "the panic of closure {bad} must reach the caller"
            );
        }
        // Still usable afterwards.
        assert_eq!(join(|| 1, || 2), (1, 2));
    }
}
