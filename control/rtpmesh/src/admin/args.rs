//! The command line of the operator commands (clap definitions); what each
//! does is in the parent module.

use clap::{Args, Subcommand, ValueEnum};

use rtpmesh_control::region::GatewayState;

/// Where the operator API is and how to authenticate to it.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub(crate) struct ApiTarget {
    /// Base URL of the operator API.
    #[arg(
        long = "api",
        value_name = "URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub(crate) url: String,
    /// Bearer token for the API.
    #[arg(long, env = "RTPMESH_API_TOKEN", hide_env_values = true, global = true)]
    pub(crate) token: Option<String>,
}

/// How a command prints its result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Args)]
pub(crate) struct Output {
    /// Print the API's raw JSON reply instead of a table.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// The operator commands.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub(crate) enum AdminCmd {
    /// Regions: add, list, remove.
    Region {
        /// What to do.
        #[command(subcommand)]
        cmd: RegionCmd,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
    /// Relay nodes: list, drain, remove (also `rtpmesh node list|drain|remove`).
    #[command(name = "nodes")]
    Node {
        /// What to do.
        #[command(subcommand)]
        cmd: NodeCmd,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
    /// Client gateways: add, list, set state, remove.
    Gateway {
        /// What to do.
        #[command(subcommand)]
        cmd: GatewayCmd,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
    /// Endpoint routes: register, list, unregister.
    Endpoint {
        /// What to do.
        #[command(subcommand)]
        cmd: EndpointCmd,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
    /// Latency between regions: set, list.
    Latency {
        /// What to do.
        #[command(subcommand)]
        cmd: LatencyCmd,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
    /// Route selection.
    Route {
        /// What to do.
        #[command(subcommand)]
        cmd: RouteCmd,
        /// Output format.
        #[command(flatten)]
        out: Output,
    },
}

/// `region ...`
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub(crate) enum RegionCmd {
    /// Add a region (adding one that exists changes nothing).
    Add {
        /// Region name, e.g. `eu-west`.
        name: String,
    },
    /// List regions with their node and gateway counts.
    List,
    /// Remove a region no node or gateway stands in.
    Remove {
        /// Region name.
        name: String,
    },
}

/// `node ...`
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub(crate) enum NodeCmd {
    /// List nodes and whether each takes new calls.
    List,
    /// Stop new calls to a node (running calls go on), or with --off take
    /// them again.
    Drain {
        /// Node id.
        id: String,
        /// Take the draining mark off.
        #[arg(long)]
        off: bool,
    },
    /// Remove a node from the registry.
    Remove {
        /// Node id.
        id: String,
    },
}

/// A gateway state as typed on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StateArg {
    /// Takes new calls.
    Up,
    /// No new calls; running ones go on.
    Draining,
    /// Unreachable or stopped.
    Down,
}

impl From<StateArg> for GatewayState {
    fn from(s: StateArg) -> Self {
        match s {
            StateArg::Up => Self::Up,
            StateArg::Draining => Self::Draining,
            StateArg::Down => Self::Down,
        }
    }
}

/// `gateway ...`
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub(crate) enum GatewayCmd {
    /// Add a gateway, or redefine one (its state and load stay).
    Add {
        /// Gateway id.
        id: String,
        /// The region it stands in.
        #[arg(long)]
        region: String,
        /// Where INVITEs for its clients go.
        #[arg(long, value_name = "HOST:PORT")]
        sip: String,
        /// Most concurrent calls [default: unlimited].
        #[arg(long)]
        capacity: Option<u32>,
    },
    /// List gateways and whether each takes new calls.
    List,
    /// Set a gateway's state.
    State {
        /// Gateway id.
        id: String,
        /// New state.
        state: StateArg,
    },
    /// Remove a gateway and the routes through it.
    Remove {
        /// Gateway id.
        id: String,
    },
}

/// `endpoint ...`
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub(crate) enum EndpointCmd {
    /// Register (or refresh) an endpoint's route through a gateway.
    Register {
        /// Endpoint, e.g. `alice`.
        endpoint: String,
        /// Gateway it is reachable through.
        #[arg(long)]
        gateway: String,
        /// Seconds until the route lapses.
        #[arg(long, default_value_t = 3600)]
        expires: u64,
    },
    /// List an endpoint's routes, expired ones too.
    Routes {
        /// Endpoint.
        endpoint: String,
    },
    /// Remove an endpoint's route through a gateway.
    Unregister {
        /// Endpoint.
        endpoint: String,
        /// Gateway id.
        #[arg(long)]
        gateway: String,
    },
}

/// `latency ...`
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub(crate) enum LatencyCmd {
    /// Configure the one-way latency between two regions (a measured
    /// figure, when there is one, wins).
    Set {
        /// One region.
        a: String,
        /// The other region.
        b: String,
        /// Milliseconds.
        ms: u32,
    },
    /// Show the latency matrix.
    List,
}

/// `route ...`
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub(crate) enum RouteCmd {
    /// Show which gateway and nodes a call would take now, and why.
    Explain {
        /// The callee; without it, only the caller's node is chosen.
        endpoint: Option<String>,
        /// The caller's region.
        #[arg(long, value_name = "REGION", required_unless_present = "gateway")]
        from: Option<String>,
        /// The caller's gateway.
        #[arg(long, value_name = "GW", conflicts_with = "from")]
        gateway: Option<String>,
    },
}
