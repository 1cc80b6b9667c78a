//! tokio: the worker threads of a runtime become stallwatch workers.
//!
//! ```ignore
//! use stallwatch::tokio_runtime::BuilderExt;
//! stallwatch::init("my-service", 0)?;
//! let rt = tokio::runtime::Builder::new_multi_thread().enable_all().stallwatch("web").build()?;
//! ```
//!
//! What tokio 1.24 offers, and how it is used:
//! - `on_thread_park` / `on_thread_unpark` run around a worker's park: the
//!   worker is PARKED while it waits for tasks, and each unpark ticks.
//!   Only worker threads call them, so a thread is registered at its first
//!   park: the blocking pool's threads (which `on_thread_start` also sees)
//!   are never registered, and never reported while they wait for work.
//! - `on_thread_stop` releases the slot.
//! - tokio 1.24 has no stable per-poll hook. A worker that runs task after
//!   task without ever parking only ticks through [`Instrumented`] futures:
//!   wrap the tasks you spawn ([`spawn`], or an executor for hyper), and
//!   each of their polls ticks the worker that runs it. Tasks that nobody
//!   wrapped do not tick. (WIP: the `tokio_unstable` poll counts are not
//!   used yet; docs/README to come.)

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::Worker;

thread_local! {
    static WORKER: Cell<Option<*const Worker>> = const { Cell::new(None) };
}

fn current_or_register(prefix: &Arc<str>, next: &Arc<AtomicUsize>) -> *const Worker {
    WORKER.with(|w| {
        if let Some(p) = w.get() {
            return p;
        }
        let n = next.fetch_add(1, Ordering::Relaxed);
        let worker = Box::leak(Box::new(Worker::register(&format!("{prefix}-{n}"))));
        w.set(Some(worker));
        worker as *const Worker
    })
}

/// Ticks the calling thread's worker, if the runtime registered it.
#[inline]
pub fn tick_current() {
    WORKER.with(|w| {
        if let Some(p) = w.get() {
            unsafe { (*p).tick() };
        }
    });
}

/// Registers every worker thread of the runtime under construction.
pub trait BuilderExt {
    /// Workers are named `PREFIX-0`, `PREFIX-1`, … in the order they first
    /// park.
    fn stallwatch(&mut self, prefix: &str) -> &mut Self;
}

impl BuilderExt for tokio::runtime::Builder {
    fn stallwatch(&mut self, prefix: &str) -> &mut Self {
        let prefix: Arc<str> = Arc::from(prefix);
        let next = Arc::new(AtomicUsize::new(0));
        let (p1, n1) = (prefix.clone(), next.clone());
        let (p2, n2) = (prefix, next);
        self.on_thread_park(move || {
            let w = current_or_register(&p1, &n1);
            unsafe { (*w).park() };
        })
        .on_thread_unpark(move || {
            let w = current_or_register(&p2, &n2);
            unsafe { (*w).unpark() };
        })
        .on_thread_stop(|| {
            WORKER.with(|w| {
                if let Some(p) = w.take() {
                    let worker = unsafe { Box::from_raw(p.cast_mut()) };
                    worker.unregister();
                }
            });
        })
    }
}

/// A future whose every poll ticks the worker that polls it.
pub struct Instrumented<F> {
    inner: F,
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        tick_current();
        // Safety: `inner` is structurally pinned; it is never moved out.
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.inner) };
        let r = inner.poll(cx);
        tick_current();
        r
    }
}

/// Wraps `fut` so that each of its polls ticks the worker running it.
pub fn instrument<F: Future>(fut: F) -> Instrumented<F> {
    Instrumented { inner: fut }
}

/// `tokio::spawn` of an [`Instrumented`] future.
pub fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(instrument(fut))
}
