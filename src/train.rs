//! `model.fit(...)` with Keras's semantics (`docs/keras-parity.md`,
//! section 4): one row of history per epoch.
use std::time::Instant;

use anyhow::Result;
use tch::{Device, Kind, Tensor};

use crate::evaluation::{bce_with_logits, evaluate, SplitTensors, Totals};
use crate::model::SentimentModel;
use crate::optim::Adam;
use crate::progress::{EpochProgress, Verbosity};
use crate::settings::TrainConfig;

/// One row of the history, as Keras's CSVLogger writes it plus timings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochRecord {
    /// Counted from 0, as in Keras's CSV.
    pub epoch: usize,
    pub accuracy: f64,
    pub loss: f64,
    pub val_accuracy: f64,
    pub val_loss: f64,
    /// Wall time of the epoch: training and validation.
    pub seconds: f64,
    /// Training samples per second (training part only).
    pub samples_per_second: f64,
}

/// `model.fit(x, y, batch_size, epochs, validation_data=(x_val, y_val))`.
///
/// The training set is reshuffled before every epoch and every sample is
/// used (the last batch is partial). `on_epoch` runs after each epoch, e.g.
/// to log history and save weights, so a killed run keeps finished epochs.
pub fn fit(
    model: &SentimentModel,
    optimizer: &mut Adam,
    train: &SplitTensors,
    validation: &SplitTensors,
    config: &TrainConfig,
    verbosity: Verbosity,
    mut on_epoch: impl FnMut(&EpochRecord) -> Result<()>,
) -> Result<()> {
    let n = train.len() as i64;
    let batch = config.batch_size as i64;
    let steps = (n + batch - 1) / batch;
    for epoch in 0..config.epochs {
        let started = Instant::now();
        let mut progress = EpochProgress::start(verbosity, epoch + 1, config.epochs, steps as u64);
        let order = Tensor::randperm(n, (Kind::Int64, Device::Cpu)).to_device(train.x.device());
        let mut totals = Totals::new(train.y.device());
        for step in 0..steps {
            let idx = order.narrow(0, step * batch, batch.min(n - step * batch));
            let (x, y) = (train.x.index_select(0, &idx), train.y.index_select(0, &idx));
            let forward = model.forward_train(&x);
            let loss = bce_with_logits(&forward.logits, &y);
            totals.add(&forward.logits, &y, &loss);
            optimizer.step(&forward.backward(model, &loss));
            progress.step(step as u64 + 1, || {
                let running = totals.means();
                vec![("accuracy", running.accuracy), ("loss", running.loss)]
            });
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let trained = totals.means();
        let validated = evaluate(model, validation, config.validation_batch_size);
        let record = EpochRecord {
            epoch,
            accuracy: trained.accuracy,
            loss: trained.loss,
            val_accuracy: validated.accuracy,
            val_loss: validated.loss,
            seconds: started.elapsed().as_secs_f64(),
            samples_per_second: n as f64 / train_seconds,
        };
        progress.finish(&[
            ("accuracy", record.accuracy),
            ("loss", record.loss),
            ("val_accuracy", record.val_accuracy),
            ("val_loss", record.val_loss),
        ]);
        on_epoch(&record)?;
    }
    Ok(())
}
