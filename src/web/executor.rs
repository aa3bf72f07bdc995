//! The worker's executor: every wake polls its future again in a microtask of this thread.
//!
//! IndexedDB commits a transaction as soon as control returns to the event loop with none of
//! its requests pending, so a transaction that is read, then written, must be continued in
//! the microtask that delivers the read. wasm-bindgen's own executor does that in a
//! single-thread build, but with wasm atomics (the multithreaded build) it sleeps on
//! `Atomics.waitAsync`, whose wake-up is a new task: the transaction has committed by then.
//! Both builds use this executor, so they behave alike.
//!
//! Every future here is woken on the worker's own thread, by a JS callback (a promise, an
//! IndexedDB event, a message from the page) or by another future of this executor; the
//! threads of the CPU backend's pool never hold these wakers. A wake from another thread is
//! ignored rather than run in the wrong JS realm.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Wake, Waker};
use std::thread::ThreadId;

use wasm_bindgen::prelude::*;

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;

thread_local! {
    /// The futures that wait to be woken, by task id. A future is taken out while it is
    /// polled, so that it may spawn others.
    static WAITING: RefCell<HashMap<u64, LocalFuture>> = RefCell::new(HashMap::new());
    static NEXT_ID: Cell<u64> = const { Cell::new(0) };
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = queueMicrotask)]
    fn queue_microtask(callback: &JsValue);
}

struct TaskWaker {
    id: u64,
    thread: ThreadId,
    /// A poll is queued and has not started yet: further wakes need not queue another.
    queued: AtomicBool,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if std::thread::current().id() != self.thread || self.queued.swap(true, Ordering::SeqCst) {
            return;
        }
        let task = Arc::clone(self);
        queue_microtask(&Closure::once_into_js(move || poll(task)));
    }
}

fn poll(task: Arc<TaskWaker>) {
    task.queued.store(false, Ordering::SeqCst);
    let Some(mut future) = WAITING.with(|waiting| waiting.borrow_mut().remove(&task.id)) else {
        return;
    };
    let waker = Waker::from(Arc::clone(&task));
    if future
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending()
    {
        WAITING.with(|waiting| waiting.borrow_mut().insert(task.id, future));
    }
}

/// Runs `future` to its end on this thread, starting in the next microtask.
pub fn spawn_local(future: impl Future<Output = ()> + 'static) {
    let id = NEXT_ID.with(|next| next.replace(next.get() + 1));
    WAITING.with(|waiting| waiting.borrow_mut().insert(id, Box::pin(future)));
    let task = Arc::new(TaskWaker {
        id,
        thread: std::thread::current().id(),
        queued: AtomicBool::new(false),
    });
    task.wake_by_ref();
}
