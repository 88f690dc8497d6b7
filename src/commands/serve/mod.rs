//! `gru-imdb serve RUN`: the run's model behind TF Serving's REST API.
//!
//! `batcher.rs` owns the model on a thread of its own and gathers
//! concurrent requests into one forward pass; `routes.rs` is the HTTP API
//! (its bodies in `api.rs`, its refusals in `errors.rs`); `access.rs` the
//! API key; `connections.rs` the connection limit, timeouts and the drain;
//! `log.rs` the request log; `metrics.rs` Prometheus's page; `page.rs` the
//! page to try it.
mod access;
mod api;
mod batcher;
mod connections;
mod errors;
mod log;
mod metrics;
mod page;
mod routes;

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use crate::settings::ServeSettings;
use batcher::Batcher;
use metrics::Metrics;
use routes::App;

/// Serves until SIGTERM or Ctrl-C, then lets the requests in flight finish.
pub fn serve_command(settings: &ServeSettings) -> Result<()> {
    // Bound first, so that a port in use is said before the model loads.
    let listener = std::net::TcpListener::bind(settings.address)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .with_context(|| format!("cannot listen on {}", settings.address))?;
    let metrics = Arc::new(Metrics::default());
    let (batcher, facts, model_thread) = Batcher::start(settings, metrics.clone())?;
    let app = App {
        batcher,
        facts: Arc::new(facts),
        metrics,
        model_name: settings.model_name.as_str().into(),
        limits: settings.limits,
        page: page::page_for(&settings.model_name).into(),
        log_texts: settings.log_texts,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the server's threads")?;
    runtime.block_on(listen(settings, listener, app))?;
    drop(runtime);
    // Every request handle is gone with the runtime: the model's thread ends.
    let _ = model_thread.join();
    eprintln!("Stopped.");
    Ok(())
}

async fn listen(settings: &ServeSettings, listener: std::net::TcpListener, app: App) -> Result<()> {
    let listener = TcpListener::from_std(listener)
        .with_context(|| format!("cannot listen on {}", settings.address))?;
    let address = listener.local_addr()?;
    println!(
        "Serving {} as {} on http://{address}",
        settings.run_dir.display(),
        settings.model_name
    );
    let router = routes::router(app, settings.access.clone());
    connections::serve(listener, router, settings.limits, shutdown_signal()).await;
    Ok(())
}

/// SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    eprintln!("Draining: answering the requests in flight, then stopping.");
}
