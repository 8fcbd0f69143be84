//! Checked writes: a change is written (with its PUBLISH) only if what it
//! names is in the store, under WATCH so a concurrent writer cannot slip
//! between the check and the write. The store refuses what a
//! [`Registry`](crate::region::Registry) would, so its snapshot always
//! replays.

use redis::{Cmd, Connection, RedisResult};

use super::conn::Conn;
use super::{gateway_key, node_key, CHANNEL, GATEWAYS, LATENCY, NODES, REGIONS, ROUTES};
use crate::region::registry::RegistryError;
use crate::region::store::StoreError;

/// Something that must hold for a change to be written.
pub(super) enum Check {
    /// `field` is in the hash `key`.
    InHash(&'static str, String, RegistryError),
    /// `member` is in the set `key`.
    InSet(&'static str, String, RegistryError),
    /// No node or gateway stands in the region.
    RegionUnused(String),
}

/// Writes that depend on what the store holds, read under the same WATCH.
pub(super) enum Extra {
    /// Nothing.
    None,
    /// Drop the routes through a gateway.
    RoutesVia(String),
    /// Drop the latency figures naming a region.
    LatencyOf(String),
}

impl Check {
    fn key(&self) -> &'static str {
        match self {
            Self::InHash(k, ..) | Self::InSet(k, ..) => k,
            Self::RegionUnused(_) => NODES,
        }
    }

    /// The error when the check fails.
    fn failed(&self, con: &mut Connection) -> RedisResult<Option<RegistryError>> {
        let ok = match self {
            Self::InHash(key, field, _) => redis::cmd("HEXISTS").arg(key).arg(field).query(con)?,
            Self::InSet(key, member, _) => {
                redis::cmd("SISMEMBER").arg(key).arg(member).query(con)?
            }
            Self::RegionUnused(region) => !region_used(con, region)?,
        };
        Ok((!ok).then(|| match self {
            Self::InHash(_, _, e) | Self::InSet(_, _, e) => e.clone(),
            Self::RegionUnused(r) => RegistryError::RegionInUse(r.clone()),
        }))
    }
}

/// Whether a node or gateway stands in the region.
fn region_used(con: &mut Connection, region: &str) -> RedisResult<bool> {
    for (set, key) in [
        (NODES, node_key as fn(&str) -> String),
        (GATEWAYS, gateway_key),
    ] {
        let ids: Vec<String> = redis::cmd("SMEMBERS").arg(set).query(con)?;
        for id in ids {
            let info: Option<String> = redis::cmd("HGET").arg(key(&id)).arg("info").query(con)?;
            // Both records carry their region in the same field.
            let in_region = info
                .and_then(|i| serde_json::from_str::<serde_json::Value>(&i).ok())
                .is_some_and(|v| v["region"] == region);
            if in_region {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

impl Extra {
    fn writes(&self, con: &mut Connection) -> RedisResult<Vec<Cmd>> {
        let (key, fields): (&str, Vec<String>) = match self {
            Self::None => return Ok(Vec::new()),
            Self::RoutesVia(gateway) => {
                let members: Vec<String> = redis::cmd("HKEYS").arg(ROUTES).query(con)?;
                let via = members
                    .into_iter()
                    .filter(|m| {
                        serde_json::from_str::<[String; 2]>(m).is_ok_and(|[_, gw]| &gw == gateway)
                    })
                    .collect();
                (ROUTES, via)
            }
            Self::LatencyOf(region) => {
                let fields: Vec<String> = redis::cmd("HKEYS").arg(LATENCY).query(con)?;
                let of = fields
                    .into_iter()
                    .filter(|f| {
                        serde_json::from_str::<[String; 3]>(f)
                            .is_ok_and(|[a, b, _]| &a == region || &b == region)
                    })
                    .collect();
                (LATENCY, of)
            }
        };
        if fields.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = vec![redis::cmd("HDEL").arg(key).arg(&fields).clone()];
        if key == ROUTES {
            out.push(
                redis::cmd("ZREM")
                    .arg(super::ROUTE_EXPIRY)
                    .arg(&fields)
                    .clone(),
            );
        }
        Ok(out)
    }

    fn key(&self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::RoutesVia(_) => Some(ROUTES),
            Self::LatencyOf(_) => Some(LATENCY),
        }
    }
}

impl Conn {
    /// Writes `writes` and the extra writes, then publishes `msg`, all in
    /// one transaction, if every check holds; else answers the first
    /// failed check's error and writes nothing.
    pub(super) fn publish_checked(
        &self,
        checks: &[Check],
        extra: &Extra,
        writes: &[Cmd],
        msg: &str,
    ) -> Result<(), StoreError> {
        // WATCH needs a key; the regions hash is as good as any when no
        // check names one.
        let mut watch: Vec<&str> = vec![REGIONS];
        watch.extend(checks.iter().map(Check::key));
        watch.extend(extra.key());
        if checks.iter().any(|c| matches!(c, Check::RegionUnused(_))) {
            watch.push(GATEWAYS);
        }
        watch.sort_unstable();
        watch.dedup();
        let refused: Option<RegistryError> = self.with_con(|con| {
            redis::transaction(con, &watch, |con, pipe| {
                for check in checks {
                    if let Some(e) = check.failed(con)? {
                        return Ok(Some(Some(e)));
                    }
                }
                for w in writes.iter().cloned().chain(extra.writes(con)?) {
                    pipe.add_command(w).ignore();
                }
                pipe.cmd("PUBLISH").arg(CHANNEL).arg(msg);
                // None: a watched key changed; transaction() runs it again.
                let done: Option<(i64,)> = pipe.query(con)?;
                Ok(done.map(|_| None))
            })
        })?;
        match refused {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}
