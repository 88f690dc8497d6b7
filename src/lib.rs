//! gru-imdb: the Keras IMDB GRU sentiment tutorial on libtorch.
//!
//! From the command line to the work: `cli` parses flags and validates them
//! into `settings`; `commands` runs each subcommand. `data` turns
//! `aclImdb_v1.tar.gz` into the padded arrays of `imdb.load_data(num_words)
//! + pad_sequences(maxlen)`; `model` is the Keras model (its GRU is the fused
//! kernel of `gru_cpu` on the CPU and those of `gru_cuda` on a GPU), placed by
//! `device`; `train` fits it
//! with `optim`'s Adam, `evaluation` measures it, `inference` loads a trained
//! one back; `run_folder` owns what a run leaves on disk.
pub mod atomic;
pub mod cli;
pub mod commands;
mod cpu_generator;
pub mod cuda;
pub mod data;
pub mod device;
pub mod disk;
pub mod dynlib;
pub mod evaluation;
pub mod gru_cpu;
pub mod gru_cuda;
pub mod inference;
pub mod lock;
pub mod model;
pub mod optim;
mod pool;
pub mod profile;
pub mod progress;
pub mod results;
pub mod run_config;
pub mod run_folder;
pub mod settings;
pub mod train;
