//! `serve`'s flags, and their conversion into `ServeSettings`: the
//! address, who may call, and the limits, checked before the model loads.
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::{DeviceFlags, ThreadsFlags, WeightsFlags};
use crate::device::DeviceAndThreads;
use crate::settings::{check_serve_limits, Access, Batching, ServeLimits, ServeSettings};

#[derive(Args, Debug)]
pub struct ServeFlags {
    /// Run folder of a finished training.
    pub run: PathBuf,
    /// TCP port (0: any free one; the address is printed).
    #[arg(long, default_value_t = 8501)]
    pub port: u16,
    /// Address to listen on; any but a loopback one needs --api-key-file or --no-auth.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The model's name in /v1/models/<name> [default: the run folder's name].
    #[arg(long)]
    pub model_name: Option<String>,
    /// A file holding the key callers must send as `Authorization: Bearer <key>`.
    #[arg(long, value_name = "FILE", conflicts_with = "no_auth")]
    pub api_key_file: Option<PathBuf>,
    /// Let anyone who reaches a non-loopback --host call the API.
    #[arg(long)]
    pub no_auth: bool,
    #[command(flatten)]
    pub weights: WeightsFlags,
    #[command(flatten)]
    pub device: DeviceFlags,
    #[command(flatten)]
    pub threads: ThreadsFlags,
    #[command(flatten)]
    pub batching: BatchingFlags,
    #[command(flatten)]
    pub limits: LimitFlags,
    /// Print the review texts of each request in the request log.
    #[arg(long)]
    pub log_texts: bool,
}

/// Dynamic batching.
#[derive(Args, Debug)]
pub struct BatchingFlags {
    /// Reviews gathered into one forward pass, at most.
    #[arg(long, default_value_t = 256)]
    pub max_batch: usize,
    /// How long a request waits for others to share its forward pass.
    #[arg(long, value_name = "MS", default_value_t = 2)]
    pub batch_timeout_ms: u64,
}

/// What one caller may ask.
#[derive(Args, Debug)]
pub struct LimitFlags {
    /// Largest request body (413 beyond).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Most reviews in one request (400 beyond).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_instances: usize,
    /// Longest review, in UTF-8 bytes (400 beyond).
    #[arg(long, value_name = "BYTES", default_value_t = 100_000)]
    pub max_text_bytes: usize,
    /// Time to send a request's headers, from when the connection waits
    /// for one (so also how long a kept-alive connection may sit idle), and
    /// then its body: the connection is closed, or the answer is 408.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub read_timeout_ms: u64,
    /// Open connections at most; more are answered 503 and closed.
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub max_connections: usize,
}

impl TryFrom<&ServeFlags> for ServeSettings {
    type Error = anyhow::Error;

    fn try_from(flags: &ServeFlags) -> Result<ServeSettings> {
        let batching = flags.batching.settings();
        let limits = flags.limits.settings();
        check_serve_limits(&batching, &limits)?;
        let address = resolve_address(&flags.host, flags.port)?;
        let access = flags.access(&address)?;
        let threads = flags.threads.resolve()?;
        Ok(ServeSettings {
            run_dir: flags.run.clone(),
            model_name: flags.model_name()?,
            address,
            access,
            weights: flags.weights.weights,
            device: DeviceAndThreads::resolve(flags.device.device, threads)?,
            batching,
            limits,
            log_texts: flags.log_texts,
        })
    }
}

impl ServeFlags {
    /// `--model-name`, or the run folder's name.
    fn model_name(&self) -> Result<String> {
        let name = match &self.model_name {
            Some(name) => name.clone(),
            None => std::path::absolute(&self.run)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .with_context(|| {
                    format!(
                        "{} has no folder name: give --model-name",
                        self.run.display()
                    )
                })?,
        };
        if name.is_empty() || name.contains(['/', ':', '?', '#']) {
            bail!("--model-name must be non-empty, without '/', ':', '?' or '#', got '{name}'");
        }
        Ok(name)
    }

    /// Open on a loopback address; elsewhere only with a key or `--no-auth`.
    fn access(&self, address: &SocketAddr) -> Result<Access> {
        match (&self.api_key_file, self.no_auth) {
            (Some(file), _) => Ok(Access::Key(read_key(file)?)),
            (None, true) => Ok(Access::Open),
            (None, false) if address.ip().is_loopback() => Ok(Access::Open),
            (None, false) => bail!(
                "--host {} is not a loopback address: anyone who reaches it could call the model; \
                 give --api-key-file FILE (callers send `Authorization: Bearer <key>`) or --no-auth",
                self.host
            ),
        }
    }
}

impl BatchingFlags {
    fn settings(&self) -> Batching {
        Batching {
            max_batch: self.max_batch,
            timeout: Duration::from_millis(self.batch_timeout_ms),
        }
    }
}

impl LimitFlags {
    fn settings(&self) -> ServeLimits {
        ServeLimits {
            max_body_bytes: self.max_body_bytes,
            max_instances: self.max_instances,
            max_text_bytes: self.max_text_bytes,
            read_timeout: Duration::from_millis(self.read_timeout_ms),
            max_connections: self.max_connections,
        }
    }
}

/// `--host` and `--port` as one socket address (a name resolves to its first).
fn resolve_address(host: &str, port: u16) -> Result<SocketAddr> {
    (host, port)
        .to_socket_addrs()
        .with_context(|| format!("--host {host}: not an address this machine can resolve"))?
        .next()
        .with_context(|| format!("--host {host}: resolves to no address"))
}

/// The key of `--api-key-file`: its text without surrounding white space.
fn read_key(file: &Path) -> Result<String> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read --api-key-file {}", file.display()))?;
    let key = text.trim();
    if key.is_empty() {
        bail!(
            "--api-key-file {} is empty: it must hold the key",
            file.display()
        );
    }
    // Callers send it in a header, which holds visible ASCII only.
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        bail!(
            "--api-key-file {}: the key must be one line of visible ASCII characters \
             (no spaces), as an HTTP header carries it",
            file.display()
        );
    }
    Ok(key.to_owned())
}
