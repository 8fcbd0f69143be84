//! A blocking client for the operator API: one request, one typed reply or
//! an error carrying the API's own message.

use std::time::Duration;

use anyhow::{bail, Context};
use serde::de::DeserializeOwned;
use serde::Serialize;
use ureq::Agent;

use rtpmesh_control::api::wire::ErrorReply;

/// How long one request may take, connect to last byte.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Percent-encodes a path segment or query value: everything but RFC 3986
/// unreserved characters, so ids with `/`, `+`, `@` or spaces survive.
pub(super) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The API at one base URL, with an optional token.
pub(super) struct Client {
    agent: Agent,
    base: String,
    token: Option<String>,
}

/// A reply: its raw text (for `--json`) and the path it answered.
pub(super) struct Reply {
    pub(super) text: String,
    path: String,
}

impl Reply {
    /// The reply as `T`.
    pub(super) fn parse<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_str(&self.text)
            .with_context(|| format!("unexpected reply to {}: {}", self.path, self.text))
    }

    /// The reply, pretty-printed (what `--json` prints).
    pub(super) fn pretty(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.text)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or_else(|_| self.text.clone())
    }
}

impl Client {
    pub(super) fn new(api: &str, token: Option<&str>) -> Self {
        let api = api.trim_end_matches('/');
        // `--api 10.0.0.5:8080` is what people type; it means plain HTTP.
        let base = if api.contains("://") {
            api.to_owned()
        } else {
            format!("http://{api}")
        };
        let agent: Agent = Agent::config_builder()
            // Error statuses carry the API's message in their body: read
            // them as replies, not as transport errors.
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            .build()
            .into();
        Self {
            agent,
            base,
            token: token.filter(|t| !t.is_empty()).map(str::to_owned),
        }
    }

    pub(super) fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.call("GET", path, None)
    }

    pub(super) fn delete(&self, path: &str) -> anyhow::Result<Reply> {
        self.call("DELETE", path, None)
    }

    pub(super) fn post(&self, path: &str, body: &impl Serialize) -> anyhow::Result<Reply> {
        let body = serde_json::to_string(body).context("cannot encode request body")?;
        self.call("POST", path, Some(body))
    }

    fn call(&self, method: &str, path: &str, body: Option<String>) -> anyhow::Result<Reply> {
        let url = format!("{}{path}", self.base);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let result = match (method, body) {
            ("POST", Some(body)) => {
                let mut rq = self
                    .agent
                    .post(&url)
                    .header("Content-Type", "application/json");
                if let Some(a) = &auth {
                    rq = rq.header("Authorization", a);
                }
                rq.send(body)
            }
            ("DELETE", _) => {
                let mut rq = self.agent.delete(&url);
                if let Some(a) = &auth {
                    rq = rq.header("Authorization", a);
                }
                rq.call()
            }
            _ => {
                let mut rq = self.agent.get(&url);
                if let Some(a) = &auth {
                    rq = rq.header("Authorization", a);
                }
                rq.call()
            }
        };
        let mut resp = result.with_context(|| format!("cannot reach the API at {}", self.base))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .with_context(|| format!("cannot read the reply to {method} {path}"))?;
        if status >= 400 {
            let msg = serde_json::from_str::<ErrorReply>(&text)
                .map(|e| e.error)
                .unwrap_or(text);
            if status == 401 {
                bail!(
                    "the API refused the token ({status}): {msg}; pass --token or set RTPMESH_API_TOKEN"
                );
            }
            bail!("{method} {path} failed ({status}): {msg}");
        }
        Ok(Reply {
            text,
            path: path.to_owned(),
        })
    }
}
