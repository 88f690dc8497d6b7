//! The model as a Keras 3 `.keras` file: a zip (entries stored, as Keras
//! writes them) of `metadata.json`, `config.json` and `model.weights.h5`,
//! which `keras.saving.load_model` opens without custom objects.
//!
//! `config.json` is the tutorial's `Sequential` as Keras 3 serialises it
//! (an `InputLayer` of `[None, maxlen]` int32 ids, `embedding`, `gru`,
//! `dense`), with our settings: Keras's own initialisers, dropout and
//! recurrent dropout, `reset_after=True`, the head's sigmoid or softmax.
//! It has no `compile_config`: the model loads uncompiled (no optimizer
//! whose state the file lacks); `docs/export.md` has the `compile` line that
//! matches the run. The weights file is laid out as Keras's `H5IOStore`
//! saves a Sequential model: `layers/<layer>/vars/<i>` (the GRU's under
//! `layers/gru/cell/vars`), with the empty `vars` groups Keras leaves.
use std::io::{Cursor, Write};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use zip::write::FileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::hdf5::{self, Group};
use super::{Activation, Array, ExportedModel};
use crate::utc::UtcTime;

/// The Keras version whose layout the files follow (`metadata.json`).
pub const KERAS_VERSION: &str = "3.15.1";

/// The `.keras` file's bytes.
pub fn keras_file(model: &ExportedModel) -> Result<Vec<u8>> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let stored = FileOptions::default().compression_method(CompressionMethod::Stored);
    let metadata = json!({
        "keras_version": KERAS_VERSION,
        "date_saved": date_saved(),
        "exported_by": format!("gru-imdb {}", env!("CARGO_PKG_VERSION")),
        "gru_imdb": model.provenance.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect::<serde_json::Map<String, Value>>(),
    });
    let entries = [
        ("metadata.json", serde_json::to_vec(&metadata)?),
        ("config.json", serde_json::to_vec(&config(model))?),
        ("model.weights.h5", weights_h5(model)),
    ];
    for (name, bytes) in entries {
        zip.start_file(name, stored)
            .and_then(|()| zip.write_all(&bytes).map_err(Into::into))
            .with_context(|| format!("cannot add {name} to the .keras file"))?;
    }
    Ok(zip.finish()?.into_inner())
}

/// Keras's `"%Y-%m-%d@%H:%M:%S"`, in UTC.
fn date_saved() -> String {
    let t = UtcTime::of(std::time::SystemTime::now());
    format!(
        "{:04}-{:02}-{:02}@{:02}:{:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// `model.weights.h5`.
fn weights_h5(model: &ExportedModel) -> Vec<u8> {
    let arrays = &model.arrays;
    let mut root = Group::new();
    root.group("vars");
    let layers: [(&str, Vec<&Array>); 3] = [
        ("embedding/vars", vec![&arrays.embeddings]),
        (
            "gru/cell/vars",
            vec![
                &arrays.gru_kernel,
                &arrays.gru_recurrent_kernel,
                &arrays.gru_bias,
            ],
        ),
        ("dense/vars", vec![&arrays.dense_kernel, &arrays.dense_bias]),
    ];
    let all_layers = root.group("layers");
    all_layers.path("gru/vars");
    for (path, variables) in layers {
        let group = all_layers.path(path);
        for (i, array) in variables.into_iter().enumerate() {
            group.dataset(&i.to_string(), array);
        }
    }
    hdf5::file_bytes(&root)
}

/// `config.json`: the Sequential model as `keras.saving.serialize_keras_object`
/// writes it.
fn config(model: &ExportedModel) -> Value {
    let arrays = &model.arrays;
    let (vocabulary, embedding_dim) = (arrays.embeddings.shape[0], arrays.embeddings.shape[1]);
    let units = model.units();
    let activation = match model.activation() {
        Activation::Sigmoid => "sigmoid",
        Activation::Softmax => "softmax",
    };
    let input_shape = json!([null, model.maxlen]);
    let layers = vec![
        layer(
            "InputLayer",
            json!({"batch_shape": input_shape, "dtype": "int32", "sparse": false,
                   "ragged": false, "name": "input_layer", "optional": false}),
            None,
        ),
        layer(
            "Embedding",
            json!({"name": "embedding", "trainable": true, "dtype": float32(),
                   "input_dim": vocabulary, "output_dim": embedding_dim,
                   "embeddings_initializer": initializer("RandomUniform",
                       json!({"seed": null, "minval": -0.05, "maxval": 0.05})),
                   "embeddings_regularizer": null, "activity_regularizer": null,
                   "embeddings_constraint": null, "mask_zero": false,
                   "quantization_config": null}),
            Some(input_shape.clone()),
        ),
        layer(
            "GRU",
            gru_config(model),
            Some(json!([null, model.maxlen, embedding_dim])),
        ),
        layer(
            "Dense",
            json!({"name": "dense", "trainable": true, "dtype": float32(),
                   "units": model.outputs(), "activation": activation, "use_bias": true,
                   "kernel_initializer": glorot_uniform(),
                   "bias_initializer": initializer("Zeros", json!({})),
                   "kernel_regularizer": null, "bias_regularizer": null,
                   "kernel_constraint": null, "bias_constraint": null,
                   "quantization_config": null}),
            Some(json!([null, units])),
        ),
    ];
    json!({
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "sequential", "trainable": true, "dtype": float32(),
                   "layers": layers, "build_input_shape": input_shape},
        "registered_name": null,
        "build_config": {"input_shape": input_shape},
    })
}

fn gru_config(model: &ExportedModel) -> Value {
    json!({"name": "gru", "trainable": true, "dtype": float32(),
           "return_sequences": false, "return_state": false, "go_backwards": false,
           "stateful": false, "unroll": false, "zero_output_for_mask": false,
           "units": model.units(), "activation": "tanh", "recurrent_activation": "sigmoid",
           "use_bias": true, "kernel_initializer": glorot_uniform(),
           "recurrent_initializer": initializer("Orthogonal", json!({"seed": null, "gain": 1.0})),
           "bias_initializer": initializer("Zeros", json!({})),
           "kernel_regularizer": null, "recurrent_regularizer": null, "bias_regularizer": null,
           "activity_regularizer": null, "kernel_constraint": null,
           "recurrent_constraint": null, "bias_constraint": null,
           "dropout": model.dropout, "recurrent_dropout": model.recurrent_dropout,
           "reset_after": true, "seed": null})
}

fn layer(class_name: &str, config: Value, input_shape: Option<Value>) -> Value {
    let mut layer = json!({"module": "keras.layers", "class_name": class_name,
                           "config": config, "registered_name": null});
    if let Some(shape) = input_shape {
        layer["build_config"] = json!({ "input_shape": shape });
    }
    layer
}

fn float32() -> Value {
    json!({"module": "keras", "class_name": "DTypePolicy",
           "config": {"name": "float32"}, "registered_name": null})
}

fn initializer(class_name: &str, config: Value) -> Value {
    json!({"module": "keras.initializers", "class_name": class_name,
           "config": config, "registered_name": null})
}

fn glorot_uniform() -> Value {
    initializer(
        "GlorotUniform",
        json!({"seed": null, "input_axes": null, "output_axes": null}),
    )
}
