//! The subcommands, each from its validated settings to its output.
pub mod evaluate;
pub mod predict;
pub mod train;
mod train_data;
