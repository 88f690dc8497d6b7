//! The IMDB data pipeline: download -> archive -> tokenise -> vocabulary ->
//! encode -> pad -> cache. The contract is `keras-parity.md` section 1.
use std::path::PathBuf;

/// Where the data comes from and how it is shaped; defaults equal Keras's.
#[derive(Debug, Clone)]
pub struct DataConfig {
    /// Download and cache folder.
    pub data_dir: PathBuf,
    /// http(s) URL or local path of `aclImdb_v1.tar.gz`.
    pub url: String,
    /// Expected sha256 (hex) of the archive; `None` for the canonical URL
    /// means the canonical checksum.
    pub sha256: Option<String>,
    /// Keras `num_words`.
    pub max_features: usize,
    /// Keras `pad_sequences(maxlen)`.
    pub maxlen: usize,
    /// Show progress bars and messages.
    pub progress: bool,
}

/// One split as row-major arrays: `x` is `n x maxlen` ids, `y` is 0/1.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub x: Vec<i32>,
    pub y: Vec<u8>,
    pub maxlen: usize,
}

impl Split {
    pub fn len(&self) -> usize {
        self.y.len()
    }
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

pub const CANONICAL_URL: &str = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz";

/// The `data` subcommand (being implemented on the `data` branch).
pub fn run_data_command(_cfg: &DataConfig, _export: Option<&std::path::Path>) -> anyhow::Result<()> {
    anyhow::bail!("the data pipeline is not implemented yet")
}
