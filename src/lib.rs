//! gru-imdb: the Keras IMDB GRU sentiment tutorial on libtorch.
//!
//! `data` turns `aclImdb_v1.tar.gz` into the padded arrays of
//! `imdb.load_data(num_words) + pad_sequences(maxlen)`; `model` is the Keras
//! model; `train` fits and evaluates it.
pub mod data;
pub mod gru_cpu;
