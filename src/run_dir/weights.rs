//! Weights files (safetensors): written with what libtorch writes, read back
//! only into a model of the same shapes, and only if every value is finite.
use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use tch::{nn, Tensor};

/// Writes the variables of `vs` to `path` (the caller publishes it).
pub fn write_weights(vs: &nn::VarStore, path: &Path) -> Result<()> {
    crate::disk::before_write(path)
        .map_err(anyhow::Error::from)
        .and_then(|()| Ok(vs.save(path)?))
        .with_context(|| format!("cannot save the weights to {}", path.display()))
}

/// Writes named tensors to `path` (the caller publishes it).
pub fn write_tensors(tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
    crate::disk::before_write(path)
        .map_err(anyhow::Error::from)
        .and_then(|()| Ok(Tensor::write_safetensors(tensors, path)?))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The named tensors of a safetensors file.
pub fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    let tensors = Tensor::read_safetensors(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(tensors.into_iter().collect())
}

/// Fills the variables of `vs` from `path`. A file made for another model
/// (a name missing or extra, a shape that differs, e.g. after `config.json`
/// was edited) or holding NaN or infinite values is refused: such weights
/// would otherwise fail deep in libtorch or give plausible-looking nonsense.
pub fn load_weights(vs: &mut nn::VarStore, path: &Path) -> Result<()> {
    let mut saved = read_tensors(path)?;
    let variables = vs.variables();
    for (name, variable) in &variables {
        let Some(value) = saved.remove(name) else {
            bail!(
                "{} has no tensor '{name}': it is not this model's weights file",
                path.display()
            );
        };
        if value.size() != variable.size() {
            bail!(
                "{}: '{name}' has shape {:?} but the model of config.json expects {:?}",
                path.display(),
                value.size(),
                variable.size()
            );
        }
        if !bool::try_from(value.isfinite().all()).unwrap_or(false) {
            bail!("{}: '{name}' holds NaN or infinite values", path.display());
        }
        tch::no_grad(|| variable.shallow_clone().copy_(&value));
    }
    if let Some(extra) = saved.keys().next() {
        bail!(
            "{} has a tensor '{extra}' that this model does not have",
            path.display()
        );
    }
    Ok(())
}
