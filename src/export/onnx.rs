//! The model as one ONNX graph, encoded by hand (`onnx.proto`'s field
//! numbers; IR version 7, opset 13, which onnxruntime and tract both run):
//!
//! ```text
//! token_ids int64 [batch, maxlen]
//!   -> Gather(embeddings)                     [batch, maxlen, D]
//!   -> Transpose(perm 1, 0, 2)                [maxlen, batch, D]
//!   -> GRU(linear_before_reset = 1, initial_h) Y_h [1, batch, H]
//!   -> Squeeze(axes 0)                        [batch, H]
//!   -> Gemm(dense_kernel, dense_bias)         [batch, outputs]
//!   -> Sigmoid | Softmax(axis -1)             probabilities [batch, outputs]
//! ```
//!
//! Keras's GRU with `reset_after=True` is ONNX's with
//! `linear_before_reset=1`: the reset gate multiplies `h R_h + b_Rh`, after
//! the recurrent bias. Both order the gates z, r, h and both compute
//! `H_t = (1 - z) * h~ + z * H_(t-1)`. ONNX's weights are Keras's
//! transposed (`W = kernel^T`, `[1, 3H, D]`; `R = recurrent_kernel^T`,
//! `[1, 3H, H]`) and its bias is Keras's two rows end to end (`[1, 6H]`:
//! the input bias, then the recurrent bias).
//!
//! The initial state, zeros as the operator's default, is given anyway,
//! shaped `[1, batch, H]` from the input's shape (Shape -> Gather -> Concat
//! -> ConstantOfShape): tract builds a GRU without one only for a batch size
//! known in advance, and with it runs any batch.
use super::{Activation, ExportedModel};
use crate::protobuf::Message;

pub const IR_VERSION: u64 = 7;
pub const OPSET: u64 = 13;
pub const INPUT: &str = "token_ids";
pub const OUTPUT: &str = "probabilities";

/// `TensorProto.DataType`.
const FLOAT: u64 = 1;
const INT64: u64 = 7;
/// `AttributeProto.AttributeType`.
const ATTRIBUTE_INT: u64 = 2;
const ATTRIBUTE_TENSOR: u64 = 4;
const ATTRIBUTE_INTS: u64 = 7;

/// The serialised `ModelProto`.
pub fn model_bytes(model: &ExportedModel) -> Vec<u8> {
    let mut proto = Message::new()
        .varint(1, IR_VERSION)
        .string(2, "gru-imdb")
        .string(3, env!("CARGO_PKG_VERSION"))
        .message(7, graph(model))
        .message(8, Message::new().varint(2, OPSET));
    for (key, value) in &model.provenance {
        proto = proto.message(14, Message::new().string(1, key).string(2, value));
    }
    proto.into_bytes()
}

/// `GraphProto`: nodes (1), name (2), initializers (5), inputs (11),
/// outputs (12).
fn graph(model: &ExportedModel) -> Message {
    let arrays = &model.arrays;
    let units = model.units();
    let mut graph = Message::new();
    for node in nodes(model) {
        graph = graph.message(1, node);
    }
    graph = graph.string(2, "gru_imdb");
    let gru_w = arrays.gru_kernel.transposed();
    let gru_r = arrays.gru_recurrent_kernel.transposed();
    // ONNX's one direction leads each GRU tensor; the bias is both rows.
    for (name, shape, values) in [
        (
            "embeddings",
            arrays.embeddings.shape.clone(),
            &arrays.embeddings.values,
        ),
        ("gru_W", [&[1], &gru_w.shape[..]].concat(), &gru_w.values),
        ("gru_R", [&[1], &gru_r.shape[..]].concat(), &gru_r.values),
        ("gru_B", vec![1, 6 * units], &arrays.gru_bias.values),
        (
            "dense_kernel",
            arrays.dense_kernel.shape.clone(),
            &arrays.dense_kernel.values,
        ),
        (
            "dense_bias",
            arrays.dense_bias.shape.clone(),
            &arrays.dense_bias.values,
        ),
    ] {
        graph = graph.message(5, float_tensor(name, &shape, values));
    }
    for (name, values) in [
        ("squeeze_axes", [0]),
        ("batch_axis", [0]),
        ("one", [1]),
        ("units", [units as i64]),
    ] {
        graph = graph.message(5, int64_tensor(name, &values));
    }
    let batch = Dimension::Named("batch");
    graph
        .message(
            11,
            value_info(INPUT, INT64, &[batch, Dimension::Fixed(model.maxlen)]),
        )
        .message(
            12,
            value_info(OUTPUT, FLOAT, &[batch, Dimension::Fixed(model.outputs())]),
        )
}

fn nodes(model: &ExportedModel) -> Vec<Message> {
    let head = match model.activation() {
        Activation::Sigmoid => node("Sigmoid", &["logits"], &[OUTPUT]),
        Activation::Softmax => {
            node("Softmax", &["logits"], &[OUTPUT]).message(5, int_attribute("axis", -1))
        }
    };
    let zero = float_tensor("zero", &[1], &[0.0]);
    vec![
        node("Gather", &["embeddings", INPUT], &["embedded"]).message(5, int_attribute("axis", 0)),
        node("Transpose", &["embedded"], &["time_major"])
            .message(5, ints_attribute("perm", &[1, 0, 2])),
        node("Shape", &[INPUT], &["input_shape"]),
        node("Gather", &["input_shape", "batch_axis"], &["batch"])
            .message(5, int_attribute("axis", 0)),
        node("Concat", &["one", "batch", "units"], &["initial_shape"])
            .message(5, int_attribute("axis", 0)),
        node("ConstantOfShape", &["initial_shape"], &["initial_state"])
            .message(5, tensor_attribute("value", zero)),
        // No sequence lengths (every row is maxlen long, pre-padded as
        // Keras runs it); Y (every step's state) is not asked for, only
        // Y_h, the last.
        node(
            "GRU",
            &["time_major", "gru_W", "gru_R", "gru_B", "", "initial_state"],
            &["", "last_state"],
        )
        .message(5, int_attribute("hidden_size", model.units() as i64))
        .message(5, int_attribute("linear_before_reset", 1)),
        node("Squeeze", &["last_state", "squeeze_axes"], &["state"]),
        node(
            "Gemm",
            &["state", "dense_kernel", "dense_bias"],
            &["logits"],
        ),
        head,
    ]
}

/// `NodeProto`: inputs (1), outputs (2), name (3: its first output's),
/// op_type (4); attributes (5) are added by the caller.
fn node(op_type: &str, inputs: &[&str], outputs: &[&str]) -> Message {
    let mut node = Message::new();
    for input in inputs {
        node = node.string(1, input);
    }
    for output in outputs {
        node = node.string(2, output);
    }
    let name = outputs.iter().find(|o| !o.is_empty()).unwrap_or(&op_type);
    node.string(3, name).string(4, op_type)
}

/// `AttributeProto`: name (1), i (3), type (20). Negative values are
/// int64's two's complement, as protobuf encodes them.
fn int_attribute(name: &str, value: i64) -> Message {
    Message::new()
        .string(1, name)
        .varint(3, value as u64)
        .varint(20, ATTRIBUTE_INT)
}

/// `AttributeProto`: name (1), t (5), type (20).
fn tensor_attribute(name: &str, tensor: Message) -> Message {
    Message::new()
        .string(1, name)
        .message(5, tensor)
        .varint(20, ATTRIBUTE_TENSOR)
}

/// `AttributeProto`: name (1), ints (8), type (20).
fn ints_attribute(name: &str, values: &[i64]) -> Message {
    let mut attribute = Message::new().string(1, name);
    for &value in values {
        attribute = attribute.varint(8, value as u64);
    }
    attribute.varint(20, ATTRIBUTE_INTS)
}

/// `TensorProto`: dims (1), data_type (2), name (8), raw_data (9,
/// little-endian).
fn float_tensor(name: &str, shape: &[usize], values: &[f32]) -> Message {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor_header(shape, FLOAT).string(8, name).bytes(9, &raw)
}

fn int64_tensor(name: &str, values: &[i64]) -> Message {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor_header(&[values.len()], INT64)
        .string(8, name)
        .bytes(9, &raw)
}

fn tensor_header(shape: &[usize], data_type: u64) -> Message {
    let mut tensor = Message::new();
    for &dim in shape {
        tensor = tensor.varint(1, dim as u64);
    }
    tensor.varint(2, data_type)
}

#[derive(Clone, Copy)]
enum Dimension {
    Fixed(usize),
    Named(&'static str),
}

/// `ValueInfoProto` { name (1), type (2): `TypeProto` { tensor_type (1):
/// { elem_type (1), shape (2): { dim (1): { dim_value (1) | dim_param (2) } } } } }.
fn value_info(name: &str, elem_type: u64, dims: &[Dimension]) -> Message {
    let mut shape = Message::new();
    for dim in dims {
        let dim = match *dim {
            Dimension::Fixed(size) => Message::new().varint(1, size as u64),
            Dimension::Named(param) => Message::new().string(2, param),
        };
        shape = shape.message(1, dim);
    }
    let tensor_type = Message::new().varint(1, elem_type).message(2, shape);
    Message::new()
        .string(1, name)
        .message(2, Message::new().message(1, tensor_type))
}
