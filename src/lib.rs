//! gru-imdb: the Keras IMDB GRU sentiment tutorial on libtorch.
//!
//! From the command line to the work: `cli` parses flags and validates them
//! into `settings`; `commands` runs each subcommand (`train` plans the run
//! once: data, classes, placement). `data` turns `aclImdb_v1.tar.gz` into
//! the padded arrays of `imdb.load_data(num_words) + pad_sequences(maxlen)`;
//! `model` is the Keras model, whose training step is one call (its GRU is
//! the fused kernel of `gru_cpu` on the CPU and those of `gru_cuda` on a
//! GPU), placed by `device`; `train` fits it with `optim`'s Adam,
//! `evaluation` measures it, `trained` loads a trained one back; `run_dir`
//! owns what a run leaves on disk, and `reports` shows it to people.
//! `docs/architecture.md` has the layers and which way the imports go.
//!
//! Modules are public only where the binary, a test or a bench needs them.
mod atomic;
pub mod cli;
pub mod commands;
mod cpu_generator;
pub mod cuda;
pub mod data;
pub mod device;
mod disk;
mod dynlib;
pub mod evaluation;
pub mod export;
mod file_lock;
pub mod gru_cpu;
pub mod gru_cuda;
pub mod model;
pub mod optim;
mod pool;
mod profile;
mod progress;
mod protobuf;
mod reports;
mod run_config;
pub mod run_dir;
mod settings;
mod tensorboard;
mod train;
pub mod trained;
mod utc;
