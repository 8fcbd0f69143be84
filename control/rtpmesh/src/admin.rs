//! The operator commands that talk to the HTTP API (`rtpmesh_control::api`):
//! regions, nodes, gateways, endpoint routes, latency and route
//! explanations.
//!
//! The binary embeds [`AdminCmd`] next to its own commands and
//! [`ApiTarget`] for where the API is, e.g.:
//!
//! ```ignore
//! #[derive(clap::Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     api: ApiTarget,
//!     #[command(subcommand)]
//!     command: Cmd,
//! }
//! #[derive(clap::Subcommand)]
//! enum Cmd {
//!     #[command(flatten)]
//!     Admin(AdminCmd),
//!     // ...
//! }
//! // Cmd::Admin(cmd) => admin::run(cmd, &cli.api.url, cli.api.token.as_deref()),
//! ```

use std::io::{self, Write};

use rtpmesh_control::api::wire;

mod args;
mod client;
mod print;

pub(crate) use args::{
    AdminCmd, ApiTarget, EndpointCmd, GatewayCmd, LatencyCmd, NodeCmd, Output, RegionCmd, RouteCmd,
    StateArg,
};

use client::{encode, Client};

/// Runs one command against the API at `api`, printing to stdout.
pub(crate) fn run(cmd: AdminCmd, api: &str, token: Option<&str>) -> anyhow::Result<()> {
    run_to(cmd, api, token, &mut io::stdout().lock())
}

/// [`run`], printing to `out`.
pub(crate) fn run_to(
    cmd: AdminCmd,
    api: &str,
    token: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let c = Client::new(api, token);
    let (reply, json) = match cmd {
        AdminCmd::Region { cmd, out: o } => (region(&c, cmd, o.json, out)?, o.json),
        AdminCmd::Node { cmd, out: o } => (node(&c, cmd, o.json, out)?, o.json),
        AdminCmd::Gateway { cmd, out: o } => (gateway(&c, cmd, o.json, out)?, o.json),
        AdminCmd::Endpoint { cmd, out: o } => (endpoint(&c, cmd, o.json, out)?, o.json),
        AdminCmd::Latency { cmd, out: o } => (latency(&c, cmd, o.json, out)?, o.json),
        AdminCmd::Route { cmd, out: o } => (route(&c, cmd, o.json, out)?, o.json),
    };
    if json {
        writeln!(out, "{}", reply.pretty())?;
    }
    Ok(())
}

// Each group below sends its request and, unless `json` is set (then
// `run_to` prints the raw reply), prints it for a person.

fn region(
    c: &Client,
    cmd: RegionCmd,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<client::Reply> {
    let reply = match cmd {
        RegionCmd::Add { name } => {
            let r = c.post("/v1/regions", &wire::AddRegion { name: name.clone() })?;
            if !json {
                writeln!(out, "region {name} added")?;
            }
            r
        }
        RegionCmd::List => {
            let r = c.get("/v1/regions")?;
            if !json {
                print::regions(out, &r.parse()?)?;
            }
            r
        }
        RegionCmd::Remove { name } => {
            let r = c.delete(&format!("/v1/regions/{}", encode(&name)))?;
            if !json {
                writeln!(out, "region {name} removed")?;
            }
            r
        }
    };
    Ok(reply)
}

fn node(
    c: &Client,
    cmd: NodeCmd,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<client::Reply> {
    let reply = match cmd {
        NodeCmd::List => {
            let r = c.get("/v1/nodes")?;
            if !json {
                print::nodes(out, &r.parse()?)?;
            }
            r
        }
        NodeCmd::Drain { id, off } => {
            let r = c.post(
                &format!("/v1/nodes/{}/drain", encode(&id)),
                &wire::SetDraining { draining: !off },
            )?;
            if !json {
                let what = if off {
                    "takes new calls again"
                } else {
                    "draining"
                };
                writeln!(out, "node {id} {what}")?;
            }
            r
        }
        NodeCmd::Remove { id } => {
            let r = c.delete(&format!("/v1/nodes/{}", encode(&id)))?;
            if !json {
                writeln!(out, "node {id} removed")?;
            }
            r
        }
    };
    Ok(reply)
}

fn gateway(
    c: &Client,
    cmd: GatewayCmd,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<client::Reply> {
    let reply = match cmd {
        GatewayCmd::Add {
            id,
            region,
            sip,
            capacity,
        } => {
            let r = c.post(
                "/v1/gateways",
                &wire::AddGateway {
                    id: id.clone(),
                    region: region.clone(),
                    sip: sip.clone(),
                    capacity,
                },
            )?;
            if !json {
                let cap = capacity
                    .filter(|c| *c != 0)
                    .map_or("unlimited".to_owned(), |c| c.to_string());
                writeln!(
                    out,
                    "gateway {id} added in {region}, sip {sip}, capacity {cap}"
                )?;
            }
            r
        }
        GatewayCmd::List => {
            let r = c.get("/v1/gateways")?;
            if !json {
                print::gateways(out, &r.parse()?)?;
            }
            r
        }
        GatewayCmd::State { id, state } => {
            let r = c.post(
                &format!("/v1/gateways/{}/state", encode(&id)),
                &wire::SetGatewayState {
                    state: state.into(),
                },
            )?;
            if !json {
                let v: wire::GatewayView = r.parse()?;
                let usable = if v.usable {
                    "takes new calls".to_owned()
                } else {
                    format!("takes no new calls: {}", v.reason.unwrap_or_default())
                };
                let state = match state {
                    StateArg::Up => "up",
                    StateArg::Draining => "draining",
                    StateArg::Down => "down",
                };
                writeln!(out, "gateway {id} is {state}, {usable}")?;
            }
            r
        }
        GatewayCmd::Remove { id } => {
            let r = c.delete(&format!("/v1/gateways/{}", encode(&id)))?;
            if !json {
                writeln!(out, "gateway {id} removed, and the routes through it")?;
            }
            r
        }
    };
    Ok(reply)
}

fn endpoint(
    c: &Client,
    cmd: EndpointCmd,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<client::Reply> {
    let reply = match cmd {
        EndpointCmd::Register {
            endpoint,
            gateway,
            expires,
        } => {
            let r = c.post(
                &format!("/v1/endpoints/{}/routes", encode(&endpoint)),
                &wire::RegisterRoute {
                    gateway: gateway.clone(),
                    expires_s: expires,
                },
            )?;
            if !json {
                writeln!(
                    out,
                    "endpoint {endpoint} reachable via {gateway} for {expires} s"
                )?;
            }
            r
        }
        EndpointCmd::Routes { endpoint } => {
            let r = c.get(&format!("/v1/endpoints/{}/routes", encode(&endpoint)))?;
            if !json {
                print::routes(out, &r.parse()?)?;
            }
            r
        }
        EndpointCmd::Unregister { endpoint, gateway } => {
            let r = c.delete(&format!(
                "/v1/endpoints/{}/routes/{}",
                encode(&endpoint),
                encode(&gateway)
            ))?;
            if !json {
                writeln!(out, "route for {endpoint} via {gateway} removed")?;
            }
            r
        }
    };
    Ok(reply)
}

fn latency(
    c: &Client,
    cmd: LatencyCmd,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<client::Reply> {
    let reply = match cmd {
        LatencyCmd::Set { a, b, ms } => {
            let r = c.post(
                "/v1/latency",
                &wire::SetLatency {
                    a: a.clone(),
                    b: b.clone(),
                    ms,
                },
            )?;
            if !json {
                let v: wire::LatencyView = r.parse()?;
                let note = match v.measured_ms {
                    Some(m) => format!(" (a measured {m} ms wins)"),
                    None => String::new(),
                };
                writeln!(out, "latency {a} <-> {b}: {ms} ms configured{note}")?;
            }
            r
        }
        LatencyCmd::List => {
            let r = c.get("/v1/latency")?;
            if !json {
                print::latency(out, &r.parse()?)?;
            }
            r
        }
    };
    Ok(reply)
}

fn route(
    c: &Client,
    cmd: RouteCmd,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<client::Reply> {
    let RouteCmd::Explain {
        endpoint,
        from,
        gateway,
    } = cmd;
    let mut query = Vec::new();
    if let Some(e) = endpoint {
        query.push(format!("endpoint={}", encode(&e)));
    }
    if let Some(f) = from {
        query.push(format!("from={}", encode(&f)));
    }
    if let Some(g) = gateway {
        query.push(format!("gateway={}", encode(&g)));
    }
    let r = c.get(&format!("/v1/route/explain?{}", query.join("&")))?;
    if !json {
        let e: wire::Explain = r.parse()?;
        write!(out, "{}", e.text)?;
    }
    Ok(r)
}

#[cfg(test)]
mod tests;
