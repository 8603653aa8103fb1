//! A one-value channel whose receiver is both a `Future` and a blocking
//! wait, so the library needs no async runtime while the daemon awaits it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};

struct State<T> {
    value: Option<T>,
    waker: Option<Waker>,
    sender_gone: bool,
    receiver_gone: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

impl<T> Shared<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending half: `send` once, or drop (the receiver gets `None`).
pub(crate) struct Sender<T>(Arc<Shared<T>>);

/// The receiving half: `None` when the sender was dropped without a value.
pub(crate) struct Receiver<T>(Arc<Shared<T>>);

pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            value: None,
            waker: None,
            sender_gone: false,
            receiver_gone: false,
        }),
        ready: Condvar::new(),
    });
    (Sender(Arc::clone(&shared)), Receiver(shared))
}

impl<T> Sender<T> {
    /// Delivers the value (dropped when the receiver has gone).
    pub(crate) fn send(self, value: T) {
        let mut s = self.0.lock();
        if !s.receiver_gone {
            s.value = Some(value);
        }
        // The Drop below wakes the receiver.
    }

    /// Whether the receiver has gone (the result is no longer wanted).
    pub(crate) fn is_closed(&self) -> bool {
        self.0.lock().receiver_gone
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut s = self.0.lock();
            s.sender_gone = true;
            s.waker.take()
        };
        self.0.ready.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// Blocks until the value arrives or the sender is dropped.
    pub(crate) fn wait(self) -> Option<T> {
        let mut s = self.0.lock();
        while s.value.is_none() && !s.sender_gone {
            s = self.0.ready.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.value.take()
    }
}

impl<T> Future for Receiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut s = self.0.lock();
        if let Some(v) = s.value.take() {
            return Poll::Ready(Some(v));
        }
        if s.sender_gone {
            return Poll::Ready(None);
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.0.lock().receiver_gone = true;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_value_arrives_and_a_dropped_sender_gives_none() {
        let (tx, rx) = super::channel();
        let t = std::thread::spawn(move || tx.send(7));
        assert_eq!(rx.wait(), Some(7));
        t.join().unwrap();
        let (tx, rx) = super::channel::<u8>();
        drop(tx);
        assert_eq!(rx.wait(), None);
        let (tx, rx) = super::channel::<u8>();
        drop(rx);
        assert!(tx.is_closed());
    }
}
