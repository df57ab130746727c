//! The health worker's threads run at a lower CPU priority than the API's: when a sweep's probes
//! and the API's requests want the same cores, the requests go first and the probes wait a
//! little (a probe's time limit is seconds; a request's answer, a millisecond).
//!
//! Not `SCHED_IDLE`: it helped the API no more than nice 10 in the sweep bench, and under an API
//! that keeps every core busy it would leave the probes almost no time, so that they ran into
//! their time limits and healthy servers were reported `down`.

/// How much nicer than the rest of the process the worker's threads are (Unix nice levels: 0 is
/// normal, 19 the lowest priority).
pub(crate) const WORKER_NICE: i32 = 10;

/// Lowers the calling thread's priority by [`WORKER_NICE`]. On Linux a nice level belongs to a
/// thread, and threads started later by this one (sqlx's SQLite connection threads, say) inherit
/// it. Elsewhere it does nothing. A failure is logged, never fatal: the worker runs either way.
pub(crate) fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        let current = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
        if let Err(e) = rustix::process::setpriority_process(Some(tid), current + WORKER_NICE) {
            tracing::debug!(error = %e, "cannot lower the health worker's thread priority");
        }
    }
}
