//! Per-socket dead-peer settings: the user timeout (RFC 5482, Linux's
//! `TCP_USER_TIMEOUT`) and keep-alive idle time, interval and count, over
//! the real stack on the models, whose client host can vanish without a
//! word ([`Env::client_vanishes`]); on one inline core, so on the virtual
//! clock: the timings asserted are simulated time, exact on every run.
//! Misuse (bad values, a closed stream) on every backend.

mod common;

use std::io::ErrorKind;
use std::time::Duration;

use common::*;
use ixtcp_sockapi::testing::TestConfig;
use ixtcp_sockapi::{KeepAlive, Mode, TcpStream};

both_runtimes!(bad_values_and_closed_streams_are_refused);
on_models!(bad_values_and_closed_streams_are_refused);

#[test]
fn user_timeout_resets_a_connection_whose_peer_vanished() {
    with_backend(Backend::Models, || user_timeout_resets(Mode::Inline));
}

#[test]
fn keepalive_count_ends_an_idle_connection_whose_peer_vanished() {
    with_backend(Backend::Models, || keepalive_count_ends_a_dead_connection(Mode::Inline));
}

/// Waits for `s` to fail; returns the error and how long it took on the
/// context's clock.
fn failure(env: &Env, s: &TcpStream) -> (std::io::Error, Duration) {
    let start = env.ctx.now_ns();
    let mut err = None;
    settle(env.ctx, "the connection to fail", || {
        err = s.take_error().expect("take_error");
        err.is_some()
    });
    (err.expect("failed"), since(env.ctx, start))
}

fn user_timeout_resets(mode: Mode) {
    one_core(mode, TestConfig::default(), |env| {
        let (client, server) = pair(env.ctx, 80);
        // Far below the stack's default (120 s, beyond `SOON`): only the
        // socket's own value can end the connection in time.
        server.set_user_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(server.user_timeout().unwrap(), Some(Duration::from_secs(5)));
        // A live peer: data acknowledged, the connection stays.
        write_all(env.ctx, &server, &[1; 1000]);
        assert_eq!(read_n(env.ctx, &client, 1000), vec![1; 1000]);
        env.client_vanishes();
        write_all(env.ctx, &server, &[2; 1000]);
        let (err, took) = failure(env, &server);
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        // smoltcp's timeout counts from the peer's last segment, which came
        // just before the data left; the 1 ms wheel rounds up.
        assert!(took >= Duration::from_millis(4_900) && took <= Duration::from_millis(5_100), "reset after {took:?}");
        assert_eq!(env.stats().resets, 1);
    });
}

fn keepalive_count_ends_a_dead_connection(mode: Mode) {
    one_core(mode, TestConfig::default(), |env| {
        let (_client, server) = pair(env.ctx, 80);
        let ka = KeepAlive { idle: Duration::from_secs(2), interval: Duration::from_secs(1), count: 3 };
        server.set_keepalive_probes(Some(ka)).unwrap();
        assert_eq!(server.keepalive_probes().unwrap(), Some(ka));
        // A live peer answers the probes: after 10 s of silence from the
        // application the connection is still there.
        let start = env.ctx.now_ns();
        settle(env.ctx, "10 s idle", || since(env.ctx, start) >= Duration::from_secs(10));
        assert!(server.take_error().unwrap().is_none());
        assert!(server.peer_addr().is_ok());
        let s = env.server_stats().expect("models");
        // One probe each 2 s of the peer's silence, each answered.
        assert!(s.keepalive_probes >= 4, "{s:?}");
        assert_eq!(s.keepalive_timeouts, 0, "{s:?}");

        env.client_vanishes();
        let (err, took) = failure(env, &server);
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        // The peer was last heard answering a probe (at most `idle` ago),
        // then idle + count × interval = 5 s of silence end it.
        assert!(took >= Duration::from_secs(3) && took <= Duration::from_millis(5_100), "reset after {took:?}");
        let s = env.server_stats().expect("models");
        assert_eq!(s.keepalive_timeouts, 1, "{s:?}");
    });
}

fn bad_values_and_closed_streams_are_refused(mode: Mode) {
    one_core(mode, TestConfig::default(), |env| {
        let (c, _s) = pair(env.ctx, 80);
        assert_eq!(c.user_timeout().unwrap(), None, "the stack's default until set");
        c.set_user_timeout(Duration::ZERO).unwrap();
        assert_eq!(c.user_timeout().unwrap(), Some(Duration::ZERO));
        let e = c.set_user_timeout(Duration::from_secs(25 * 3600)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("24 h"), "{e}");
        assert_eq!(c.user_timeout().unwrap(), Some(Duration::ZERO), "a refused value changes nothing");

        let good = KeepAlive { idle: Duration::from_secs(60), interval: Duration::from_secs(10), count: 5 };
        let bad = [
            (KeepAlive { idle: Duration::ZERO, ..good }, "idle"),
            (KeepAlive { idle: Duration::from_secs(32_768), ..good }, "idle"),
            (KeepAlive { interval: Duration::from_micros(10), ..good }, "interval"),
            (KeepAlive { count: 0, ..good }, "count"),
            (KeepAlive { count: 128, ..good }, "count"),
        ];
        for (ka, what) in bad {
            let e = c.set_keepalive_probes(Some(ka)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{ka:?}");
            assert!(e.to_string().contains(what), "{ka:?}: {e}");
        }
        assert_eq!(c.keepalive_probes().unwrap(), None);
        c.set_keepalive_probes(Some(good)).unwrap();
        assert_eq!(c.keepalive_probes().unwrap(), Some(good));
        // The plain interval and the probes replace each other.
        c.set_keepalive(Some(Duration::from_secs(30))).unwrap();
        assert_eq!(c.keepalive_probes().unwrap(), None);
        c.set_keepalive_probes(Some(good)).unwrap();
        assert_eq!(c.keepalive().unwrap(), None);
        c.set_keepalive_probes(None).unwrap();
        assert_eq!(c.keepalive_probes().unwrap(), None);

        // A closed stream refuses both, saying so.
        c.close().unwrap();
        for e in
            [c.set_user_timeout(Duration::from_secs(1)).unwrap_err(), c.set_keepalive_probes(Some(good)).unwrap_err()]
        {
            assert_eq!(e.kind(), ErrorKind::NotConnected);
            assert!(e.to_string().contains("closed"), "{e}");
        }
    });
}
