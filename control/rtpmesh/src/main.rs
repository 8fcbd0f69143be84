//! `rtpmesh`: run a media node, or talk to one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use rtpmesh_control::config::{Config, ControlConfig, FastPathSetting, Interface};
use rtpmesh_control::daemon::{controller::run_controller, node::run_node};

use crate::admin::{AdminCmd, ApiTarget};
use crate::config::FileConfig;

mod admin;
mod cli;
mod config;
use rtpmesh_relay::backend::BackendKind;

#[derive(Parser)]
#[command(
    name = "rtpmesh",
    version,
    about = "RTP media relay, driven like rtpengine over the ng protocol"
)]
struct Cli {
    #[command(flatten)]
    api: ApiTarget,
    #[command(subcommand)]
    command: Cmd,
}

// Parsed once at start: the size of the largest variant costs nothing.
#[derive(Subcommand)]
enum Cmd {
    /// Run a media node.
    Node(Box<NodeArgs>),
    /// Run a regional controller: ng like a node, placing each call on
    /// relay nodes by region, latency and load.
    Control(ControlArgs),
    /// List the calls of a running node.
    Calls(Target),
    /// Show one call of a running node.
    Call {
        /// SIP Call-ID.
        call_id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Ping a running node.
    Ping(Target),
    /// Set up a call through a running node, send RTP both ways, and print
    /// what the node forwarded.
    Demo {
        #[command(flatten)]
        target: Target,
        /// Packets to send each way.
        #[arg(long, default_value_t = 50)]
        packets: u32,
        /// Through a regional controller: the endpoint to call.
        #[arg(long)]
        callee: Option<String>,
        /// Through a regional controller: the caller's region.
        #[arg(long)]
        region: Option<String>,
    },
    #[command(flatten)]
    Admin(AdminCmd),
}

#[derive(Args)]
struct Target {
    /// ng address of the node.
    #[arg(long, default_value = "127.0.0.1:2223")]
    ng: SocketAddr,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct NodeArgs {
    /// Manage nodes in the registry through the operator API instead of
    /// running one.
    #[command(subcommand)]
    manage: Option<admin::NodeCmd>,
    /// With a management command: print raw JSON.
    #[arg(long)]
    json: bool,
    /// TOML config file (flags override it).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// ng listener address [default: 127.0.0.1:2223].
    #[arg(long)]
    listen_ng: Option<SocketAddr>,
    /// Media interface, `ADDR` or `ADDR!ADVERTISED`; repeat for IPv4 and
    /// IPv6 [default: 127.0.0.1].
    #[arg(long = "interface", short = 'i', value_parser = checked::<Interface>)]
    interfaces: Vec<String>,
    /// First media port [default: 30000].
    #[arg(long)]
    port_min: Option<u16>,
    /// Last media port [default: 39999].
    #[arg(long)]
    port_max: Option<u16>,
    /// Worker threads, 0 for one per core [default: 0].
    #[arg(long)]
    workers: Option<usize>,
    /// IO backend: uring, epoll, or auto (the one that forwards with less
    /// CPU per packet on this host, measured at start) [default: auto].
    #[arg(long, value_parser = checked::<BackendKind>)]
    backend: Option<String>,
    /// Kernel fast path for latched streams: auto (tc where it loads), off,
    /// tc or xdp [default: auto].
    #[arg(long, value_parser = checked::<FastPathSetting>)]
    fast_path: Option<String>,
    /// Seconds without media before a call is removed [default: 60].
    #[arg(long)]
    timeout: Option<u64>,
    /// Default seconds `delete` keeps a call [default: 30].
    #[arg(long)]
    delete_delay: Option<u64>,
    /// Most concurrent calls, 0 for no limit [default: 0].
    #[arg(long)]
    max_sessions: Option<usize>,
    /// Tunnel socket of worker 0 (`ADDR:PORT`; worker i uses PORT+i);
    /// enables inter-node tunnels.
    #[arg(long)]
    tunnel_address: Option<SocketAddr>,
    /// Cluster secret tunnel keys are derived from (or RTPMESH_TUNNEL_SECRET).
    #[arg(long, env = "RTPMESH_TUNNEL_SECRET", hide_env_values = true)]
    tunnel_secret: Option<String>,
    /// Directory for local recordings (`start recording`, recorded branches).
    #[arg(long)]
    recording_dir: Option<PathBuf>,
    /// This node's id in the regional registry.
    #[arg(long)]
    node_id: Option<String>,
    /// This node's region.
    #[arg(long)]
    region: Option<String>,
    /// Registry to report to: `redis://HOST:PORT`.
    #[arg(long)]
    registry: Option<String>,
    /// Milliseconds between heartbeats to the registry [default: 2000].
    #[arg(long)]
    heartbeat_ms: Option<u64>,
}

#[derive(Args)]
struct ControlArgs {
    /// ng listener address.
    #[arg(long, default_value = "127.0.0.1:2222")]
    listen_ng: SocketAddr,
    /// Region of calls that name neither a gateway nor a region.
    #[arg(long)]
    region: Option<String>,
    /// Registry: `redis://HOST:PORT`; without it an embedded store.
    #[arg(long)]
    registry: Option<String>,
    /// TOML file of regions, nodes, gateways and latencies to publish at
    /// start.
    #[arg(long)]
    seed: Option<PathBuf>,
    /// HTTP API listener, e.g. 127.0.0.1:8080.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Token the HTTP API requires (or RTPMESH_API_TOKEN).
    #[arg(long, env = "RTPMESH_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Request threads.
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// Milliseconds one try to reach a node waits (two tries).
    #[arg(long, default_value_t = 400)]
    node_timeout_ms: u64,
    /// Seconds between sweeps for calls that ended on their nodes (tests).
    #[arg(long, default_value_t = 30, hide = true)]
    sweep_every_s: u64,
    /// Seconds a placed call is left alone by the sweep (tests).
    #[arg(long, default_value_t = 60, hide = true)]
    sweep_grace_s: u64,
}

/// Checks that a flag parses as `T` (so a typo fails at once, with clap's
/// usage) but keeps the text, which the config applies like a file's.
fn checked<T: FromStr>(s: &str) -> Result<String, String>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>()
        .map(|_| s.to_owned())
        .map_err(|e| e.to_string())
}

impl NodeArgs {
    /// Defaults, then the file, then the flags: the flags are applied as one
    /// more layer of the file's shape, by the same code.
    fn config(self) -> anyhow::Result<Config> {
        let mut c = Config::default();
        if let Some(path) = &self.config {
            config::apply_file(&mut c, path)?;
        }
        config::apply(
            &mut c,
            FileConfig {
                listen_ng: self.listen_ng,
                interface: (!self.interfaces.is_empty()).then_some(self.interfaces),
                port_min: self.port_min,
                port_max: self.port_max,
                workers: self.workers,
                backend: self.backend,
                fast_path: self.fast_path,
                timeout: self.timeout,
                delete_delay: self.delete_delay,
                max_sessions: self.max_sessions,
                tunnel_address: self.tunnel_address,
                tunnel_secret: self.tunnel_secret,
                recording_dir: self.recording_dir,
                node_id: self.node_id,
                region: self.region,
                registry: self.registry,
                heartbeat_ms: self.heartbeat_ms,
            },
        )?;
        c.validate()?;
        Ok(c)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rtpmesh: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Node(mut args) => {
            if let Some(cmd) = args.manage.take() {
                let out = admin::Output { json: args.json };
                return admin::run(
                    AdminCmd::Node { cmd, out },
                    &cli.api.url,
                    cli.api.token.as_deref(),
                );
            }
            let config = args.config()?;
            let stop = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(sig, stop.clone())
                    .context("cannot install signal handler")?;
            }
            Ok(run_node(config, stop)?)
        }
        Cmd::Control(a) => {
            let stop = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(sig, stop.clone())
                    .context("cannot install signal handler")?;
            }
            let config = ControlConfig {
                listen_ng: a.listen_ng,
                region: a.region,
                registry: a.registry,
                seed: a.seed,
                http: a.http,
                token: a.token,
                threads: a.threads,
                node_timeout: std::time::Duration::from_millis(a.node_timeout_ms.max(10)),
                sweep_every: std::time::Duration::from_secs(a.sweep_every_s.max(1)),
                sweep_grace: std::time::Duration::from_secs(a.sweep_grace_s),
                ..ControlConfig::default()
            };
            Ok(run_controller(config, stop)?)
        }
        Cmd::Calls(t) => cli::calls(t.ng),
        Cmd::Call { call_id, target } => cli::call(target.ng, &call_id),
        Cmd::Ping(t) => cli::ping(t.ng),
        Cmd::Demo {
            target,
            packets,
            callee,
            region,
        } => cli::demo(target.ng, packets, callee.as_deref(), region.as_deref()),
        Cmd::Admin(cmd) => admin::run(cmd, &cli.api.url, cli.api.token.as_deref()),
    }
}
