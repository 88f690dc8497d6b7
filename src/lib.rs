//! gru-imdb: the Keras IMDB GRU sentiment tutorial on libtorch.
//!
//! `data` turns `aclImdb_v1.tar.gz` into the padded arrays of
//! `imdb.load_data(num_words) + pad_sequences(maxlen)`; `model` is the Keras
//! model (its GRU on the CPU is the fused kernel of `gru_cpu`); `train` fits
//! and evaluates it; `run` is a whole training run and its run folder.
pub mod atomic;
pub mod cuda;
pub mod data;
pub mod gru_cpu;
pub mod model;
pub mod optim;
pub mod progress;
pub mod run;
pub mod train;
