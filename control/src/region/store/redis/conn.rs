//! The command connection: opened on demand, opened again when lost.

use std::sync::{Mutex, MutexGuard};

use redis::{Client, Connection, RedisError, RedisResult};

use super::{IO_TIMEOUT, ROUTES, ROUTE_EXPIRY};
use crate::region::store::StoreError;

pub(super) fn connect(client: &Client) -> RedisResult<Connection> {
    let con = client.get_connection_with_timeout(IO_TIMEOUT)?;
    con.set_read_timeout(Some(IO_TIMEOUT))?;
    con.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(con)
}

/// Whether an error means the connection is gone (and a new one may help).
fn is_lost(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

/// A client and its command connection.
pub(super) struct Conn {
    pub(super) client: Client,
    /// `None` after a failure, until the next use opens a new one.
    con: Mutex<Option<Connection>>,
}

impl Conn {
    /// Opens the first connection, so a wrong address fails at once.
    pub(super) fn open(client: Client) -> Result<Self, StoreError> {
        let con = connect(&client)?;
        Ok(Self {
            client,
            con: Mutex::new(Some(con)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Option<Connection>> {
        self.con.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the command connection; when the connection turns out
    /// lost, opens a new one and tries once more (Redis restarted).
    pub(super) fn with_con<T>(
        &self,
        f: impl Fn(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut guard = self.lock();
        let mut retried = false;
        loop {
            if guard.is_none() {
                *guard = Some(connect(&self.client)?);
            }
            let Some(con) = guard.as_mut() else {
                unreachable!("connection set above")
            };
            match f(con) {
                Ok(v) => return Ok(v),
                Err(e) if is_lost(&e) && !retried => {
                    tracing::warn!("redis store: connection lost ({e}), reconnecting");
                    *guard = None;
                    retried = true;
                }
                Err(e) => {
                    if is_lost(&e) {
                        *guard = None;
                    }
                    return Err(e.into());
                }
            }
        }
    }

    /// Removes expired routes from the keys.
    pub(super) fn prune_routes(&self, now_ms: u64) -> Result<(), StoreError> {
        self.with_con(|con| {
            let expired: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(ROUTE_EXPIRY)
                .arg("-inf")
                .arg(now_ms)
                .query(con)?;
            if expired.is_empty() {
                return Ok(());
            }
            redis::pipe()
                .atomic()
                .cmd("HDEL")
                .arg(ROUTES)
                .arg(&expired)
                .ignore()
                .cmd("ZREM")
                .arg(ROUTE_EXPIRY)
                .arg(&expired)
                .ignore()
                .query::<()>(con)
        })
    }
}
