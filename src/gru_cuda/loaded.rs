//! Loaded once per process: the driver and NVRTC libraries and each GPU's
//! compiled kernels are costly to load, and a failure to load them (no
//! driver, a failed compile) will not mend itself, so the result of the
//! first attempt, success or error, is what every later call gets.
use std::sync::Mutex;

use anyhow::{anyhow, Result};

/// The results of loading a `T` per key `K`, kept for the life of the
/// process.
pub(super) struct LoadedOnce<K, T: 'static> {
    loaded: Mutex<Vec<(K, std::result::Result<&'static T, String>)>>,
}

impl<K: PartialEq, T: 'static> LoadedOnce<K, T> {
    pub const fn new() -> Self {
        LoadedOnce {
            loaded: Mutex::new(Vec::new()),
        }
    }

    /// The `T` of `key`: loaded by `load` on the first call for the key,
    /// else what that call gave (the few keys a process uses are searched
    /// in order).
    pub fn get(&self, key: K, load: impl FnOnce() -> Result<T>) -> Result<&'static T> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let result = match loaded.iter().find(|(k, _)| *k == key) {
            Some((_, result)) => result.clone(),
            None => {
                let result = load()
                    .map(|t| &*Box::leak(Box::new(t)))
                    .map_err(|e| format!("{e:#}"));
                loaded.push((key, result.clone()));
                result
            }
        };
        result.map_err(|e| anyhow!("{e}"))
    }
}
