//! Wakers: a context's epoll wakes when another thread wakes one of its
//! wakers; level-triggered registrations report it until it is taken,
//! edge-triggered ones once per wake; a handle outliving its waker is
//! harmless. Both runtimes; the blocked wait is woken on the threaded one
//! (inline, one core runs on a virtual clock, whose waits do not wait for
//! another thread).

mod common;

use std::time::Duration;

use common::*;
use ixtcp_sockapi::testing::TestConfig;
use ixtcp_sockapi::{Epoll, Events, Interest, Mode, Token, Trigger, Waker};

both_runtimes!(
    woken_from_another_thread_until_taken,
    edge_triggered_reports_each_wake,
    a_handle_outliving_its_waker_wakes_nothing,
    wakers_of_one_context_are_told_apart,
);

/// Wakes `waker` from a thread of its own, and waits for that thread.
fn wake_elsewhere(handle: ixtcp_sockapi::WakeHandle) {
    std::thread::spawn(move || handle.wake()).join().expect("waking thread");
}

fn woken_from_another_thread_until_taken(mode: Mode) {
    one_core(mode, TestConfig::default(), |env| {
        let waker = Waker::new(env.ctx).expect("waker");
        let ep = Epoll::new(env.ctx).expect("epoll");
        ep.add(&waker, Token(1), Interest::READABLE, Trigger::LEVEL).expect("add");
        let mut events = Events::with_capacity(4);
        assert_eq!(ep.wait(&mut events, Some(Duration::ZERO)).expect("wait"), 0, "not woken yet");
        wake_elsewhere(waker.handle());
        assert_eq!(ep.wait(&mut events, Some(Duration::from_secs(5))).expect("wait"), 1);
        let ev = events.iter().next().expect("one event");
        assert_eq!(ev.token(), Token(1));
        assert!(ev.is_readable());
        // Level-triggered: still there until taken.
        assert_eq!(ep.wait(&mut events, Some(Duration::ZERO)).expect("wait"), 1);
        assert!(waker.is_woken());
        assert!(waker.take());
        assert!(!waker.take(), "a second take finds nothing");
        assert_eq!(ep.wait(&mut events, Some(Duration::ZERO)).expect("wait"), 0);
    });
}

fn edge_triggered_reports_each_wake(mode: Mode) {
    one_core(mode, TestConfig::default(), |env| {
        let waker = Waker::new(env.ctx).expect("waker");
        let ep = Epoll::new(env.ctx).expect("epoll");
        ep.add(&waker, Token(2), Interest::READABLE, Trigger::EDGE).expect("add");
        let mut events = Events::with_capacity(4);
        let handle = waker.handle();
        wake_elsewhere(handle.clone());
        wake_elsewhere(handle.clone());
        // Two wakes before the wait: one report, then nothing new.
        assert_eq!(ep.wait(&mut events, Some(Duration::from_secs(5))).expect("wait"), 1);
        assert_eq!(ep.wait(&mut events, Some(Duration::ZERO)).expect("wait"), 0);
        // Not taken, woken again: an edge all the same.
        wake_elsewhere(handle);
        assert_eq!(ep.wait(&mut events, Some(Duration::from_secs(5))).expect("wait"), 1);
        assert!(waker.take());
    });
}

fn a_handle_outliving_its_waker_wakes_nothing(mode: Mode) {
    one_core(mode, TestConfig::default(), |env| {
        let ep = Epoll::new(env.ctx).expect("epoll");
        let handle = {
            let waker = Waker::new(env.ctx).expect("waker");
            ep.add(&waker, Token(3), Interest::READABLE, Trigger::LEVEL).expect("add");
            waker.handle()
        };
        assert_eq!(env.ctx.socket_count(), 0, "the dropped waker left the socket table");
        wake_elsewhere(handle);
        let mut events = Events::with_capacity(4);
        assert_eq!(ep.wait(&mut events, Some(Duration::from_millis(10))).expect("wait"), 0);
    });
}

fn wakers_of_one_context_are_told_apart(mode: Mode) {
    one_core(mode, TestConfig::default(), |env| {
        let wakers: Vec<Waker> = (0..3).map(|_| Waker::new(env.ctx).expect("waker")).collect();
        let ep = Epoll::new(env.ctx).expect("epoll");
        for (i, w) in wakers.iter().enumerate() {
            ep.add(w, Token(10 + i), Interest::READABLE, Trigger::LEVEL).expect("add");
        }
        wake_elsewhere(wakers[1].handle());
        let mut events = Events::with_capacity(8);
        assert_eq!(ep.wait(&mut events, Some(Duration::from_secs(5))).expect("wait"), 1);
        assert_eq!(events.iter().next().expect("event").token(), Token(11));
        assert!(!wakers[0].is_woken() && wakers[1].is_woken() && !wakers[2].is_woken());
    });
}

/// Threaded: a wait blocked with nothing else to wake it ends when another
/// thread wakes the waker (a lost wake would leave it to time out).
#[test]
fn threaded_blocked_wait_ends_on_a_wake() {
    one_core(Mode::Threaded, TestConfig::default(), |env| {
        let waker = Waker::new(env.ctx).expect("waker");
        let ep = Epoll::new(env.ctx).expect("epoll");
        ep.add(&waker, Token(4), Interest::READABLE, Trigger::EDGE).expect("add");
        let mut events = Events::with_capacity(4);
        for round in 0..20 {
            let handle = waker.handle();
            let t = std::thread::spawn(move || {
                // Most rounds the wake comes while the wait blocks.
                std::thread::sleep(Duration::from_millis(5));
                handle.wake();
            });
            let n = ep.wait(&mut events, Some(Duration::from_secs(60))).expect("wait");
            assert_eq!(n, 1, "round {round}: the wait ended without the wake");
            assert!(waker.take());
            t.join().expect("waking thread");
        }
    });
}
