//! The subcommands, each from its validated settings to its output.
pub mod compare;
pub mod evaluate;
pub mod export;
pub mod plot;
pub mod predict;
pub mod report;
pub mod serve;
pub mod shell;
pub mod summary;
pub mod train;
