//! The admin commands against a served API with the fake backend.

use clap::Parser;

use super::*;
use rtpmesh_control::api::fake::{start, FakeBackend, TOKEN};
use rtpmesh_control::api::ApiHandle;

/// How the binary embeds the commands (see the module docs).
#[derive(Debug, Parser)]
struct TestCli {
    #[command(flatten)]
    api: ApiTarget,
    #[command(subcommand)]
    cmd: TestCmd,
}

#[derive(Debug, PartialEq, Eq, clap::Subcommand)]
enum TestCmd {
    #[command(flatten)]
    Admin(AdminCmd),
    /// One of the binary's own commands, beside the admin ones.
    Ping,
}

fn parse(args: &[&str]) -> TestCli {
    TestCli::try_parse_from(std::iter::once("rtpmesh").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn parse_admin(args: &[&str]) -> AdminCmd {
    match parse(args).cmd {
        TestCmd::Admin(cmd) => cmd,
        other => panic!("{args:?} parsed as {other:?}"),
    }
}

fn url(h: &ApiHandle) -> String {
    format!("http://{}", h.local_addr())
}

/// Parses `args` as the binary would and runs them, returning the output.
fn admin(h: &ApiHandle, token: Option<&str>, args: &[&str]) -> anyhow::Result<String> {
    let mut out = Vec::new();
    run_to(parse_admin(args), &url(h), token, &mut out)?;
    Ok(String::from_utf8(out).unwrap())
}

// Long because it is one session whose steps build on each other: adds, what the listings show, removes.
#[test]
fn an_operator_session() {
    let h = start(FakeBackend::seeded(), Some(TOKEN));
    let t = Some(TOKEN);
    assert_eq!(
        admin(&h, t, &["region", "add", "ap"]).unwrap(),
        "region ap added\n"
    );
    let out = admin(&h, t, &["region", "list"]).unwrap();
    assert_eq!(
        out,
        "REGION  NODES  GATEWAYS\nap      0      0\neu      1      0\nus      1      0\n"
    );
    let out = admin(
        &h,
        t,
        &[
            "gateway",
            "add",
            "gw-us",
            "--region",
            "us",
            "--sip",
            "10.0.0.9:5060",
            "--capacity",
            "50",
        ],
    )
    .unwrap();
    assert_eq!(
        out,
        "gateway gw-us added in us, sip 10.0.0.9:5060, capacity 50\n"
    );
    let out = admin(
        &h,
        t,
        &["endpoint", "register", "bob", "--gateway", "gw-us"],
    )
    .unwrap();
    assert_eq!(out, "endpoint bob reachable via gw-us for 3600 s\n");
    let out = admin(&h, t, &["endpoint", "routes", "bob"]).unwrap();
    assert!(out.contains("gw-us") && out.contains("in 3600 s"), "{out}");
    admin(&h, t, &["latency", "set", "eu", "us", "80"]).unwrap();
    let out = admin(&h, t, &["latency", "list"]).unwrap();
    assert!(out.contains("eu  -   0    80c"), "{out}");

    let out = admin(&h, t, &["route", "explain", "bob", "--from", "eu"]).unwrap();
    assert!(out.contains("via gateway gw-us"), "{out}");
    assert!(out.contains("considered:"), "{out}");

    // --json prints the API's reply as it came.
    let out = admin(
        &h,
        t,
        &["route", "explain", "bob", "--from", "eu", "--json"],
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"]["callee"]["gateway"], "gw-us");

    let out = admin(&h, t, &["nodes", "drain", "eu-1"]).unwrap();
    assert_eq!(out, "node eu-1 draining\n");
    let out = admin(&h, t, &["nodes", "list"]).unwrap();
    assert!(out.contains("no: draining"), "{out}");
    admin(&h, t, &["nodes", "drain", "eu-1", "--off"]).unwrap();
    let out = admin(&h, t, &["gateway", "state", "gw-us", "down"]).unwrap();
    assert_eq!(
        out,
        "gateway gw-us is down, takes no new calls: gateway down\n"
    );
    let out = admin(&h, t, &["gateway", "list", "--json"]).unwrap();
    assert!(out.contains("\"state\": \"down\""), "{out}");
    admin(
        &h,
        t,
        &["endpoint", "unregister", "bob", "--gateway", "gw-us"],
    )
    .unwrap();
    admin(&h, t, &["gateway", "remove", "gw-us"]).unwrap();
    admin(&h, t, &["region", "remove", "ap"]).unwrap();
    admin(&h, t, &["nodes", "remove", "us-1"]).unwrap();
}

#[test]
fn api_errors_are_shown_with_their_message() {
    let h = start(FakeBackend::seeded(), Some(TOKEN));
    let err = admin(&h, Some("wrong"), &["region", "list"]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("401"), "{msg}");
    assert!(msg.contains("RTPMESH_API_TOKEN"), "{msg}");
    let err = admin(&h, None, &["region", "add", "x"]).unwrap_err();
    assert!(format!("{err:#}").contains("token"));

    let err = admin(
        &h,
        Some(TOKEN),
        &[
            "gateway", "add", "gw", "--region", "mars", "--sip", "h:5060",
        ],
    )
    .unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "POST /v1/gateways failed (400): region \"mars\" does not exist; add it first (POST /v1/regions)"
    );
    let err = admin(&h, Some(TOKEN), &["nodes", "remove", "ghost"]).unwrap_err();
    assert!(format!("{err:#}").contains("(404): no node ghost"));
}

#[test]
fn unreachable_api_is_a_clear_error() {
    let h = start(FakeBackend::seeded(), None);
    let addr = h.local_addr();
    drop(h);
    let mut out = Vec::new();
    let err = run_to(
        parse_admin(&["region", "list"]),
        &addr.to_string(),
        None,
        &mut out,
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains(&format!("cannot reach the API at http://{addr}")),
        "{err:#}"
    );
}

#[test]
fn names_are_percent_encoded_on_the_way() {
    let h = start(FakeBackend::seeded(), None);
    admin(
        &h,
        None,
        &[
            "gateway", "add", "gw/1", "--region", "eu", "--sip", "h:5060",
        ],
    )
    .unwrap();
    admin(
        &h,
        None,
        &[
            "endpoint",
            "register",
            "+4930?x&y",
            "--gateway",
            "gw/1",
            "--expires",
            "9",
        ],
    )
    .unwrap();
    let out = admin(&h, None, &["endpoint", "routes", "+4930?x&y"]).unwrap();
    assert!(out.starts_with("endpoint +4930?x&y\n"), "{out}");
    let out = admin(
        &h,
        None,
        &["route", "explain", "+4930?x&y", "--gateway", "gw/1"],
    )
    .unwrap();
    assert!(out.contains("via gateway gw/1"), "{out}");
    admin(
        &h,
        None,
        &["endpoint", "unregister", "+4930?x&y", "--gateway", "gw/1"],
    )
    .unwrap();
}

#[test]
fn command_line_shapes() {
    let cli = parse(&[
        "--api",
        "http://10.0.0.5:8080",
        "--token",
        "t",
        "nodes",
        "list",
        "--json",
    ]);
    assert_eq!(cli.api.url, "http://10.0.0.5:8080");
    assert_eq!(cli.api.token.as_deref(), Some("t"));
    assert_eq!(
        cli.cmd,
        TestCmd::Admin(AdminCmd::Node {
            cmd: NodeCmd::List,
            out: Output { json: true }
        })
    );
    assert_eq!(parse(&["ping"]).cmd, TestCmd::Ping);
    // Global flags go after the subcommand too.
    let cli = parse(&["region", "list", "--api", "h:1"]);
    assert_eq!(cli.api.url, "h:1");
    assert_eq!(parse(&["region", "list"]).api.url, "http://127.0.0.1:8080");
    assert_eq!(
        parse_admin(&["endpoint", "register", "alice", "--gateway", "gw"]),
        AdminCmd::Endpoint {
            cmd: EndpointCmd::Register {
                endpoint: "alice".into(),
                gateway: "gw".into(),
                expires: 3600
            },
            out: Output::default()
        }
    );
    assert!(matches!(
        parse_admin(&["gateway", "state", "gw", "draining"]),
        AdminCmd::Gateway {
            cmd: GatewayCmd::State {
                state: StateArg::Draining,
                ..
            },
            ..
        }
    ));
    for bad in [
        &["route", "explain", "bob"][..],
        &["route", "explain", "bob", "--from", "eu", "--gateway", "gw"],
        &["gateway", "state", "gw", "sideways"],
        &["gateway", "add", "gw", "--region", "eu"],
    ] {
        assert!(
            TestCli::try_parse_from(std::iter::once("rtpmesh").chain(bad.iter().copied())).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn the_token_comes_from_the_environment_too() {
    // The only test that sets this variable; the others pass tokens to
    // `run_to` directly or set --token, which wins over it.
    std::env::set_var("RTPMESH_API_TOKEN", "from-env");
    let from_env = parse(&["region", "list"]).api.token;
    let from_flag = parse(&["region", "list", "--token", "flag"]).api.token;
    std::env::remove_var("RTPMESH_API_TOKEN");
    assert_eq!(from_env.as_deref(), Some("from-env"));
    assert_eq!(from_flag.as_deref(), Some("flag"));
}
