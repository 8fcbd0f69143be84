//! A private `redis-server` on loopback for the tests that need a real
//! registry store.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use super::process::{Process, Spec};

/// How long to wait for the server to answer.
const WAIT: Duration = Duration::from_secs(10);

/// A private `redis-server`, killed on drop.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    process: Process,
}

impl RedisServer {
    pub fn start() -> Self {
        // Bound and released: another process could take it in between,
        // which the readiness check would then report.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("rtpmesh-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let process = Spec::new(&format!("redis-server-{port}"), "redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout_to_log()
            .hint("(run scripts/install-test-deps.sh)")
            .start();
        let mut server = Self { port, dir, process };
        server.wait_ready();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Waits until the server answers PING.
    pub fn wait_ready(&mut self) {
        let client = redis::Client::open(self.url()).unwrap();
        self.process.wait_ready(WAIT, "PING answered", || {
            client
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok()
        });
    }

    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Stops the server and starts a fresh one on the same port (empty:
    /// persistence is off).
    pub fn restart(&mut self) {
        self.stop();
        self.process.restart();
        self.wait_ready();
    }

    /// A plain connection, to look at the keys themselves.
    pub fn raw(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
