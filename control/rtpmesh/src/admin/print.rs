//! The human-readable tables of the admin commands.

use std::io::{self, Write};

use rtpmesh_control::api::wire::{Gateways, LatencyMatrix, Nodes, Regions, Routes};
use rtpmesh_control::region::LatencySource;

/// Left-aligned columns, each as wide as its widest cell, two spaces
/// apart; the last column is not padded.
pub(super) fn table(out: &mut dyn Write, head: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| -> io::Result<()> {
        let mut text = String::new();
        for (i, (cell, w)) in cells.zip(&width).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            if i + 1 < width.len() {
                text.push_str(&" ".repeat(w - cell.chars().count()));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, &mut head.iter().copied())?;
    for row in rows {
        line(out, &mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

fn load(load: u32, capacity: u32) -> String {
    if capacity == 0 {
        format!("{load}/-")
    } else {
        format!("{load}/{capacity}")
    }
}

fn usable(ok: bool, reason: Option<&str>) -> String {
    if ok {
        "yes".into()
    } else {
        format!("no: {}", reason.unwrap_or("unknown"))
    }
}

pub(super) fn regions(out: &mut dyn Write, r: &Regions) -> io::Result<()> {
    let rows: Vec<Vec<String>> = r
        .regions
        .iter()
        .map(|r| vec![r.name.clone(), r.nodes.to_string(), r.gateways.to_string()])
        .collect();
    table(out, &["REGION", "NODES", "GATEWAYS"], &rows)
}

pub(super) fn nodes(out: &mut dyn Write, n: &Nodes) -> io::Result<()> {
    let rows: Vec<Vec<String>> = n
        .nodes
        .iter()
        .map(|v| {
            let n = &v.node;
            vec![
                n.id.clone(),
                n.region.clone(),
                n.ng.to_string(),
                n.workers.to_string(),
                load(n.load, n.capacity),
                if n.draining { "yes" } else { "no" }.into(),
                format!("{:.1}", v.age_ms as f64 / 1000.0),
                usable(v.usable, v.reason.as_deref()),
            ]
        })
        .collect();
    table(
        out,
        &[
            "NODE", "REGION", "NG", "WORKERS", "LOAD", "DRAINING", "SEEN(s)", "USABLE",
        ],
        &rows,
    )
}

pub(super) fn gateways(out: &mut dyn Write, g: &Gateways) -> io::Result<()> {
    let rows: Vec<Vec<String>> = g
        .gateways
        .iter()
        .map(|v| {
            let g = &v.gateway;
            vec![
                g.id.clone(),
                g.region.clone(),
                g.sip.clone(),
                serde_json::to_value(g.state)
                    .ok()
                    .and_then(|s| s.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                load(g.load, g.capacity),
                usable(v.usable, v.reason.as_deref()),
            ]
        })
        .collect();
    table(
        out,
        &["GATEWAY", "REGION", "SIP", "STATE", "LOAD", "USABLE"],
        &rows,
    )
}

pub(super) fn routes(out: &mut dyn Write, r: &Routes) -> io::Result<()> {
    if r.routes.is_empty() {
        return writeln!(out, "endpoint {}: no routes", r.endpoint);
    }
    let rows: Vec<Vec<String>> = r
        .routes
        .iter()
        .map(|v| {
            vec![
                v.route.gateway.clone(),
                v.route.expires_unix_ms.to_string(),
                if v.expired {
                    "expired".into()
                } else {
                    format!("in {} s", v.expires_in_ms / 1000)
                },
            ]
        })
        .collect();
    writeln!(out, "endpoint {}", r.endpoint)?;
    table(out, &["GATEWAY", "EXPIRES(unix ms)", "LAPSES"], &rows)
}

/// The matrix, one row and one column per region.
pub(super) fn latency(out: &mut dyn Write, m: &LatencyMatrix) -> io::Result<()> {
    let cell = |a: &str, b: &str| -> String {
        if a == b {
            return "0".into();
        }
        m.pairs
            .iter()
            .find(|p| (p.a == a && p.b == b) || (p.a == b && p.b == a))
            .map_or_else(
                || "-".into(),
                |p| match p.source {
                    LatencySource::Measured => format!("{}m", p.ms),
                    LatencySource::Configured => format!("{}c", p.ms),
                },
            )
    };
    let mut head = vec!["ms"];
    head.extend(m.regions.iter().map(String::as_str));
    let rows: Vec<Vec<String>> = m
        .regions
        .iter()
        .map(|a| {
            let mut row = vec![a.clone()];
            row.extend(m.regions.iter().map(|b| cell(a, b)));
            row
        })
        .collect();
    table(out, &head, &rows)?;
    writeln!(out, "(m: measured, c: configured, -: unknown)")
}
