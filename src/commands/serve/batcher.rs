//! Dynamic batching: one thread owns the model (libtorch's tensors stay on
//! it) and answers requests that arrive together with one forward pass.
//!
//! It waits for a request, then gathers more for up to `--batch-timeout-ms`
//! or until `--max-batch` reviews have come, runs them together (in forward
//! passes of at most `--max-batch` reviews) and hands each request its own
//! rows. The CPU kernel computes each review alone, the same operations in
//! the same order whatever the batch, so every answer equals `predict`'s
//! bit for bit (`tests/serve.rs`).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{anyhow, Result};
use tokio::sync::oneshot;

use super::metrics::Metrics;
use crate::run_dir::RunDir;
use crate::settings::{Batching, ServeSettings};
use crate::trained::{TextEncoder, TrainedModel};

/// What a request asks of the model (its reviews, already encoded on the
/// request's thread), and where its answer goes.
struct Job {
    rows: Vec<i32>,
    reviews: usize,
    reply: oneshot::Sender<Vec<Vec<f64>>>,
}

/// The requests' side: cheap to clone, one per handler.
#[derive(Clone)]
pub struct Batcher {
    jobs: Sender<Job>,
    /// Cleared when the model's thread ends (a panic in libtorch, say):
    /// `/healthz` then says the server cannot answer.
    alive: Arc<AtomicBool>,
}

/// Clears `alive` when the model's thread ends, however it ends.
struct ClearOnExit(Arc<AtomicBool>);

impl Drop for ClearOnExit {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// The model's facts the API reports, read on the batcher's thread.
pub struct ModelFacts {
    /// Texts into rows for [`Batcher::predict`], as `predict` encodes them.
    pub encoder: TextEncoder,
    pub class_names: Vec<String>,
    pub vocabulary_size: usize,
    pub config: serde_json::Value,
    pub weights: String,
}

/// The model's thread stopped (it panicked): the server cannot answer.
#[derive(Debug)]
pub struct BatcherGone;

impl Batcher {
    /// Loads the run's model on a thread of its own and starts batching;
    /// the thread ends when every `Batcher` is dropped.
    pub fn start(
        settings: &ServeSettings,
        metrics: Arc<Metrics>,
    ) -> Result<(Batcher, ModelFacts, JoinHandle<()>)> {
        let (jobs, queue) = mpsc::channel();
        let (loaded, facts) = mpsc::channel();
        let load = LoadRequest::of(settings);
        let alive = Arc::new(AtomicBool::new(true));
        let on_exit = ClearOnExit(alive.clone());
        let thread = std::thread::Builder::new()
            .name("batcher".to_owned())
            .spawn(move || {
                let _on_exit = on_exit;
                match load.load() {
                    Ok(trained) => {
                        let _ = loaded.send(Ok(facts_of(&trained)));
                        run(&trained, &queue, load.batching, &metrics);
                    }
                    Err(err) => {
                        let _ = loaded.send(Err(err));
                    }
                }
            })?;
        let facts = facts
            .recv()
            .map_err(|_| anyhow!("the model's thread stopped while loading"))??;
        Ok((Batcher { jobs, alive }, facts, thread))
    }

    /// Whether the model's thread still runs.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// The class probabilities of each review of `rows` (from
    /// [`TextEncoder::rows`]), from a shared forward pass.
    pub async fn predict(
        &self,
        rows: Vec<i32>,
        reviews: usize,
    ) -> Result<Vec<Vec<f64>>, BatcherGone> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                rows,
                reviews,
                reply,
            })
            .map_err(|_| BatcherGone)?;
        answer.await.map_err(|_| BatcherGone)
    }
}

/// What the model's thread loads.
struct LoadRequest {
    run_dir: std::path::PathBuf,
    weights: crate::run_dir::WeightsChoice,
    device: crate::device::DeviceAndThreads,
    batching: Batching,
}

impl LoadRequest {
    fn of(settings: &ServeSettings) -> LoadRequest {
        LoadRequest {
            run_dir: settings.run_dir.clone(),
            weights: settings.weights,
            device: settings.device,
            batching: settings.batching,
        }
    }

    fn load(&self) -> Result<TrainedModel> {
        TrainedModel::load(&RunDir::open(&self.run_dir), self.weights, &self.device)
    }
}

fn facts_of(trained: &TrainedModel) -> ModelFacts {
    ModelFacts {
        encoder: trained.encoder(),
        class_names: trained.class_names.clone(),
        vocabulary_size: trained.vocab.len(),
        config: serde_json::to_value(&trained.config).unwrap_or(serde_json::Value::Null),
        weights: trained.weights.clone(),
    }
}

/// Batches until every sender is gone.
fn run(trained: &TrainedModel, queue: &Receiver<Job>, batching: Batching, metrics: &Metrics) {
    let inference = trained.model.inference();
    let maxlen = trained.config.maxlen;
    while let Some(jobs) = gather(queue, batching) {
        let rows: Vec<i32> = jobs.iter().flat_map(|j| j.rows.iter().copied()).collect();
        let mut probabilities = Vec::with_capacity(rows.len() / maxlen);
        for chunk in rows.chunks(batching.max_batch * maxlen) {
            probabilities.extend(trained.predict_rows(&inference, chunk));
            metrics.batch_done(chunk.len() / maxlen);
        }
        let mut answers = probabilities.into_iter();
        for job in jobs {
            let answer: Vec<Vec<f64>> = answers.by_ref().take(job.reviews).collect();
            // A caller that went away no longer wants its answer.
            let _ = job.reply.send(answer);
        }
    }
}

/// The next batch: the first job to come, and those that come within the
/// timeout, until they hold `max_batch` reviews. `None` once the queue is
/// closed.
fn gather(queue: &Receiver<Job>, batching: Batching) -> Option<Vec<Job>> {
    let first = queue.recv().ok()?;
    let deadline = Instant::now() + batching.timeout;
    let mut reviews = first.reviews;
    let mut jobs = vec![first];
    while reviews < batching.max_batch {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        match queue.recv_timeout(left) {
            Ok(job) => {
                reviews += job.reviews;
                jobs.push(job);
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    Some(jobs)
}
