//! The Redis store against a real `redis-server` (installed by
//! `scripts/install-test-deps.sh`): each test starts its own on a free
//! port with persistence off, so tests run side by side and leave nothing.
//! A missing `redis-server` fails the tests: it does not skip them.

mod common;

use std::time::{Duration, Instant};

use common::redis::RedisServer;

use crossbeam_channel::Receiver;
use rtpmesh_control::region::store::unix_ms;
use rtpmesh_control::region::{
    select, Change, Gateway, GatewayState, Latency, LatencySource, NodeInfo, Origin, Query,
    RedisStore, Region, Registry, RegistryError, Route, Store, StoreError,
};

/// How long to wait for something that should happen at once.
const WAIT: Duration = Duration::from_secs(10);

fn region(name: &str) -> Change {
    Change::AddRegion(Region { name: name.into() })
}

fn node(id: &str, region: &str, at_ms: u64) -> Change {
    Change::RegisterNode(NodeInfo {
        id: id.into(),
        region: region.into(),
        ng: "127.0.0.1:2223".parse().unwrap(),
        tunnel: "127.0.0.1:4000".parse().unwrap(),
        workers: 4,
        capacity: 100,
        load: 0,
        draining: false,
        last_seen_ms: at_ms,
    })
}

fn gateway(id: &str, region: &str) -> Change {
    Change::AddGateway(Gateway {
        id: id.into(),
        region: region.into(),
        sip: format!("{id}.example:5060"),
        capacity: 50,
        load: 1,
        state: GatewayState::Up,
    })
}

fn route(endpoint: &str, gateway: &str, expires_unix_ms: u64) -> Change {
    Change::RegisterRoute(Route {
        endpoint: endpoint.into(),
        gateway: gateway.into(),
        expires_unix_ms,
    })
}

fn next(rx: &Receiver<Change>) -> Change {
    rx.recv_timeout(WAIT).expect("no change arrived")
}

#[test]
fn two_stores_see_each_others_changes() {
    let server = RedisServer::start();
    let a = RedisStore::connect(&server.url()).unwrap();
    let b = RedisStore::connect(&server.url()).unwrap();
    let rx_a = a.subscribe().unwrap();
    let rx_b = b.subscribe().unwrap();
    let mut reg_a = Registry::new();
    let mut reg_b = Registry::new();

    let t = unix_ms();
    a.publish(&region("r1")).unwrap();
    b.publish(&node("r1-a", "r1", t)).unwrap();
    let hb = Change::Heartbeat {
        node: "r1-a".into(),
        load: 7,
        capacity: 100,
        draining: false,
        at_ms: t + 2000,
    };
    b.publish(&hb).unwrap();
    let sent = [region("r1"), node("r1-a", "r1", t), hb];
    for want in &sent {
        // Both hear every change, their own included, in order.
        let got_a = next(&rx_a);
        let got_b = next(&rx_b);
        assert_eq!(&got_a, want);
        assert_eq!(&got_b, want);
        reg_a.apply(&got_a).unwrap();
        reg_b.apply(&got_b).unwrap();
    }
    assert_eq!(reg_a, reg_b);
    assert_eq!(reg_a.node("r1-a").unwrap().load, 7);
}

#[test]
// Long: most of it is the list of changes, one of each kind.
fn a_new_store_snapshot_rebuilds_the_same_registry() {
    let server = RedisServer::start();
    let a = RedisStore::connect(&server.url()).unwrap();
    let t = unix_ms();
    let changes = vec![
        region("r1"),
        region("r2"),
        region("r3"),
        node("r1-a", "r1", t),
        node("r2-a", "r2", t),
        node("r3-a", "r3", t),
        Change::Heartbeat {
            node: "r1-a".into(),
            load: 12,
            capacity: 80,
            draining: false,
            at_ms: t + 2000,
        },
        // Older than the record: ignored by both.
        Change::Heartbeat {
            node: "r1-a".into(),
            load: 99,
            capacity: 80,
            draining: false,
            at_ms: t + 1000,
        },
        Change::SetDraining {
            node: "r2-a".into(),
            draining: true,
        },
        gateway("gw-a", "r1"),
        gateway("gw-b", "r2"),
        gateway("gw-c", "r3"),
        Change::SetGatewayState {
            gateway: "gw-b".into(),
            state: GatewayState::Draining,
            load: Some(9),
        },
        route("alice", "gw-a", t + 60_000),
        route("alice", "gw-b", t + 60_000),
        route("bob", "gw-c", t + 60_000),
        route("bob", "gw-a", t + 60_000),
        route("carol", "gw-b", t - 1),
        Change::UnregisterRoute {
            endpoint: "bob".into(),
            gateway: "gw-a".into(),
        },
        Change::SetLatency(Latency {
            a: "r2".into(),
            b: "r1".into(),
            source: LatencySource::Configured,
            ms: 20,
        }),
        Change::SetLatency(Latency {
            a: "r1".into(),
            b: "r2".into(),
            source: LatencySource::Measured,
            ms: 17,
        }),
        Change::SetLatency(Latency {
            a: "r1".into(),
            b: "r3".into(),
            source: LatencySource::Configured,
            ms: 45,
        }),
        Change::RemoveGateway { id: "gw-c".into() },
        Change::RemoveNode { id: "r3-a".into() },
        Change::RemoveRegion { name: "r3".into() },
    ];
    let mut want = Registry::new();
    for c in &changes {
        a.publish(c).unwrap();
        want.apply(c).unwrap();
    }
    want.prune_routes(unix_ms());

    let fresh = RedisStore::connect(&server.url()).unwrap();
    let snap = fresh.snapshot().unwrap();
    let got = Registry::from_changes(&snap).unwrap();
    assert_eq!(got, want);
    assert_eq!(got.node("r1-a").unwrap().load, 12);
    assert!(got.node("r2-a").unwrap().draining);
    assert_eq!(got.latency("r2", "r1"), Some(17));
    assert_eq!(got.routes("alice", unix_ms()).count(), 2);
    // And it routes the same.
    let q = Query {
        origin: Origin::Region("r1".into()),
        endpoint: Some("alice".into()),
    };
    let decided = select(&got, t + 2000, &q);
    assert_eq!(decided, select(&want, t + 2000, &q));
    assert_eq!(decided.unwrap().callee.unwrap().gateway, "gw-a");

    // The expired route is gone from the keys too, not just hidden, and
    // the removed gateway's routes went with it.
    let mut raw = server.raw();
    let routes: Vec<String> = redis::cmd("HKEYS")
        .arg("rtpmesh:routes")
        .query(&mut raw)
        .unwrap();
    assert_eq!(routes.len(), 2, "{routes:?}");
    let expiry: usize = redis::cmd("ZCARD")
        .arg("rtpmesh:route-expiry")
        .query(&mut raw)
        .unwrap();
    assert_eq!(expiry, 2);
}

#[test]
fn changes_naming_what_the_store_lacks_are_refused() {
    let server = RedisServer::start();
    let a = RedisStore::connect(&server.url()).unwrap();
    let err = a
        .publish(&Change::Heartbeat {
            node: "ghost".into(),
            load: 1,
            capacity: 1,
            draining: false,
            at_ms: 1,
        })
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Rejected(RegistryError::UnknownNode(ref n)) if n == "ghost"),
        "{err}"
    );
    let err = a
        .publish(&Change::SetGatewayState {
            gateway: "gw-x".into(),
            state: GatewayState::Down,
            load: None,
        })
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Rejected(RegistryError::UnknownGateway(_))
    ));
    let refused = |c: Change| match a.publish(&c) {
        Err(StoreError::Rejected(e)) => e,
        other => panic!("{c:?} was not refused: {other:?}"),
    };
    assert_eq!(
        refused(node("n1", "r9", 1)),
        RegistryError::UnknownRegion("r9".into())
    );
    assert_eq!(
        refused(route("alice", "gw-x", u64::MAX)),
        RegistryError::UnknownGateway("gw-x".into())
    );
    assert_eq!(
        refused(Change::RemoveNode { id: "n1".into() }),
        RegistryError::UnknownNode("n1".into())
    );
    assert!(a.snapshot().unwrap().is_empty());

    a.publish(&region("r1")).unwrap();
    a.publish(&node("n1", "r1", 1)).unwrap();
    assert_eq!(
        refused(Change::RemoveRegion { name: "r1".into() }),
        RegistryError::RegionInUse("r1".into())
    );
    assert_eq!(
        refused(Change::UnregisterRoute {
            endpoint: "alice".into(),
            gateway: "gw-x".into()
        }),
        RegistryError::UnknownRoute {
            endpoint: "alice".into(),
            gateway: "gw-x".into()
        }
    );
    assert_eq!(
        refused(Change::SetLatency(Latency {
            a: "r1".into(),
            b: "r2".into(),
            source: LatencySource::Measured,
            ms: 3
        })),
        RegistryError::UnknownRegion("r2".into())
    );
    // Refused changes left nothing behind: the snapshot replays.
    let snap = a.snapshot().unwrap();
    assert_eq!(snap, vec![region("r1"), node("n1", "r1", 1)]);
}

#[test]
fn call_records_put_list_delete() {
    let server = RedisServer::start();
    let a = RedisStore::connect(&server.url()).unwrap();
    let b = RedisStore::connect(&server.url()).unwrap();
    a.put_call("r1-a", "call-2", r#"{"from":"bob"}"#).unwrap();
    a.put_call("r1-a", "call-1", r#"{"from":"alice"}"#).unwrap();
    a.put_call("r1-b", "call-3", "{}").unwrap();
    a.put_call("r1-a", "call-2", r#"{"from":"bob","to":"carol"}"#)
        .unwrap();
    assert_eq!(
        b.calls("r1-a").unwrap(),
        vec![
            ("call-1".to_owned(), r#"{"from":"alice"}"#.to_owned()),
            (
                "call-2".to_owned(),
                r#"{"from":"bob","to":"carol"}"#.to_owned()
            ),
        ]
    );
    b.delete_call("r1-a", "call-1").unwrap();
    b.delete_call("r1-a", "no-such-call").unwrap();
    assert_eq!(a.calls("r1-a").unwrap().len(), 1);
    assert_eq!(a.calls("r1-b").unwrap().len(), 1);
    assert!(a.calls("r9").unwrap().is_empty());
}

#[test]
fn stores_survive_a_redis_restart() {
    let mut server = RedisServer::start();
    let a = RedisStore::connect(&server.url()).unwrap();
    let b = RedisStore::connect(&server.url()).unwrap();
    let rx_b = b.subscribe().unwrap();
    a.publish(&region("before")).unwrap();
    assert_eq!(next(&rx_b), region("before"));

    server.restart();

    // A's command connection reconnects on its next use. B's subscriber
    // reconnects with backoff in its own time; changes published before it
    // is back are missed, so keep publishing until one gets through.
    let deadline = Instant::now() + WAIT;
    let mut i = 0;
    let got = loop {
        i += 1;
        a.publish(&region(&format!("after-{i}"))).unwrap();
        if let Ok(c) = rx_b.recv_timeout(Duration::from_millis(100)) {
            break c;
        }
        assert!(Instant::now() < deadline, "subscriber never came back");
    };
    let Change::AddRegion(Region { name }) = got else {
        panic!("unexpected {got:?}")
    };
    assert!(name.starts_with("after-"), "{name}");
    // The fresh server holds what was written since.
    let snap = b.snapshot().unwrap();
    assert_eq!(snap.len(), i, "{snap:?}");
    assert!(!snap.contains(&region("before")));
}

#[test]
fn unreachable_redis_is_an_error() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.stop();
    let err = RedisStore::connect(&url).unwrap_err();
    assert!(matches!(err, StoreError::Redis(_)), "{err}");
}

#[test]
fn a_subscriber_back_from_an_outage_gets_what_it_missed() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let server = RedisServer::start();
    let a = RedisStore::connect(&server.url()).unwrap();
    let b = RedisStore::connect(&server.url()).unwrap();
    let rx_b = b.subscribe().unwrap();
    a.publish(&region("r1")).unwrap();
    assert_eq!(next(&rx_b), region("r1"));

    // Connections already open stay authenticated; B's subscriber, cut off,
    // cannot come back until the password goes.
    let mut raw = server.raw();
    redis::cmd("CONFIG")
        .arg(&["SET", "requirepass", "locked-out"][..])
        .query::<()>(&mut raw)
        .unwrap();
    redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "pubsub"][..])
        .query::<()>(&mut raw)
        .unwrap();
    a.publish(&region("during")).unwrap();
    assert!(rx_b.recv_timeout(Duration::from_millis(200)).is_err());
    redis::cmd("CONFIG")
        .arg(&["SET", "requirepass", ""][..])
        .query::<()>(&mut raw)
        .unwrap();

    // Back, it resends the snapshot: what it missed is in it.
    let deadline = Instant::now() + WAIT;
    loop {
        let c = rx_b
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the missed change never arrived");
        if c == region("during") {
            break;
        }
    }
}
