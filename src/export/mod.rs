//! A trained model taken out of gru-imdb: as one ONNX graph (`onnx`), as a
//! Keras 3 `.keras` file (`keras`, with its HDF5 weights written by
//! `hdf5`), and the description of its tokenizer that both need beside
//! them (`tokenizer_json`). All of it is built in memory from
//! [`ExportedModel`]: the inference function's arrays and what shapes it,
//! nothing of libtorch; `commands::export` writes the files.
//!
//! The export is the model in inference mode: the embedding, the GRU
//! (Keras's `reset_after=True`, gates z | r | h) and the dense head with
//! its sigmoid (two classes) or softmax. Dropout and recurrent dropout act
//! only in training, so they are not in the ONNX graph; the Keras config
//! keeps them as the layers' settings, as Keras saves them.
mod hdf5;
mod keras;
mod onnx;
mod tokenizer_json;

use std::fmt;

use anyhow::Result;
use tch::{Device, Kind, Tensor};

use crate::model::Parameters;
use crate::trained::TrainedModel;

pub use tokenizer_json::{tokenizer_json, TOKENIZER_FILE};

/// The file formats `gru-imdb export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One ONNX graph (opset 13): int64 token ids in, probabilities out.
    Onnx,
    /// A Keras 3 `.keras` file: the tutorial's Sequential model.
    Keras,
}

impl ExportFormat {
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Onnx => "onnx",
            ExportFormat::Keras => "keras",
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExportFormat::Onnx => "ONNX",
            ExportFormat::Keras => "Keras",
        })
    }
}

/// A float32 array, row-major.
#[derive(Debug)]
pub struct Array {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl Array {
    fn of(tensor: &Tensor) -> Array {
        let tensor = tensor
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous();
        let shape = tensor.size().iter().map(|&d| d as usize).collect();
        let values = Vec::<f32>::try_from(tensor.flatten(0, -1)).expect("a float tensor");
        Array { shape, values }
    }

    /// The transpose of a matrix.
    fn transposed(&self) -> Array {
        let [rows, cols] = self.shape[..] else {
            panic!("a matrix, not an array of shape {:?}", self.shape)
        };
        let mut values = Vec::with_capacity(self.values.len());
        for c in 0..cols {
            values.extend((0..rows).map(|r| self.values[r * cols + c]));
        }
        Array {
            shape: vec![cols, rows],
            values,
        }
    }
}

/// What an export needs of a trained run.
pub struct ExportedModel {
    /// Keras's layouts: `[N, D]`, `[D, 3H]`, `[H, 3H]`, `[2, 3H]`,
    /// `[H, outputs]`, `[outputs]`.
    pub arrays: Parameters<Array>,
    pub maxlen: usize,
    /// By class; two classes have one sigmoid output (the second class's
    /// probability), more have one softmax output each.
    pub class_names: Vec<String>,
    pub dropout: f64,
    pub recurrent_dropout: f64,
    /// Facts about where the model comes from, kept in the files' metadata
    /// (run folder, weights, the tokenizer's sha256...).
    pub provenance: Vec<(String, String)>,
}

impl ExportedModel {
    pub fn new(trained: &TrainedModel, provenance: Vec<(String, String)>) -> ExportedModel {
        ExportedModel {
            arrays: trained.model.parameters().map(Array::of),
            maxlen: trained.config.maxlen,
            class_names: trained.class_names.clone(),
            dropout: trained.config.model.dropout,
            recurrent_dropout: trained.config.model.recurrent_dropout,
            provenance,
        }
    }

    pub fn units(&self) -> usize {
        self.arrays.gru_recurrent_kernel.shape[0]
    }

    pub fn outputs(&self) -> usize {
        self.arrays.dense_bias.shape[0]
    }

    /// The head's activation, by its name in both ONNX and Keras.
    fn activation(&self) -> Activation {
        match self.outputs() {
            1 => Activation::Sigmoid,
            _ => Activation::Softmax,
        }
    }

    /// The file of `format`.
    pub fn file_bytes(&self, format: ExportFormat) -> Result<Vec<u8>> {
        match format {
            ExportFormat::Onnx => Ok(onnx::model_bytes(self)),
            ExportFormat::Keras => keras::keras_file(self),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activation {
    Sigmoid,
    Softmax,
}
