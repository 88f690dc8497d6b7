//! Where a model runs: the device, which GRU implementation runs there in
//! training and in evaluation, and how the CPU threads are shared.
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::Device;

use crate::cuda;

/// `--device`: `auto` takes the first GPU when there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| format!("expected auto, cpu, cuda or cuda:N, got '{s}'")),
        }
    }
}

impl DeviceChoice {
    /// The device to run on; loads libtorch's CUDA backend when the choice
    /// may use a GPU (see `cuda`).
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceChoice::Auto if cuda::try_load() => Ok(Device::cuda_if_available()),
            DeviceChoice::Auto | DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda(n) => {
                cuda::load().with_context(|| format!("--device cuda:{n}"))?;
                let count = tch::Cuda::device_count() as usize;
                if n >= count {
                    bail!("--device cuda:{n}: this machine has {count} CUDA device(s) visible to libtorch");
                }
                Ok(Device::Cuda(n))
            }
        }
    }
}

/// `--gru-implementation`: `auto`, or one implementation forced (for
/// benchmarks and checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GruChoice {
    Auto,
    CpuKernel,
    OpByOp,
    Fused,
}

/// An implementation of the GRU recurrence. All compute the same function;
/// they differ in speed and in what they can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GruImpl {
    /// Our fused CPU kernel (`gru_cpu`), forward and backward through time.
    CpuKernel,
    /// The Keras step written out in libtorch ops, one step at a time.
    OpByOp,
    /// libtorch's fused GRU (cuDNN on a GPU); cannot do recurrent dropout.
    Fused,
}

/// Which implementation runs in training and which in evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GruPlan {
    pub train: GruImpl,
    pub eval: GruImpl,
}

impl GruPlan {
    /// The same implementation in both modes.
    pub fn only(gru: GruImpl) -> GruPlan {
        GruPlan {
            train: gru,
            eval: gru,
        }
    }

    /// The rule: on a CPU our kernel; on CUDA cuDNN, except for training
    /// with recurrent dropout, which cuDNN cannot do, where the op-by-op
    /// step runs. A forced choice runs in both modes, if it can.
    pub fn choose(choice: GruChoice, device: Device, recurrent_dropout: f64) -> Result<GruPlan> {
        let forced = match choice {
            GruChoice::Auto if device == Device::Cpu => {
                return Ok(GruPlan::only(GruImpl::CpuKernel))
            }
            GruChoice::Auto => {
                let train = if recurrent_dropout > 0.0 {
                    GruImpl::OpByOp
                } else {
                    GruImpl::Fused
                };
                return Ok(GruPlan {
                    train,
                    eval: GruImpl::Fused,
                });
            }
            GruChoice::CpuKernel => GruImpl::CpuKernel,
            GruChoice::OpByOp => GruImpl::OpByOp,
            GruChoice::Fused => GruImpl::Fused,
        };
        match forced {
            GruImpl::Fused if recurrent_dropout > 0.0 => {
                bail!("the fused GRU has no recurrent dropout: use --recurrent-dropout 0 with it")
            }
            GruImpl::CpuKernel if device != Device::Cpu => {
                bail!("the CPU kernel runs on the CPU only: use --device cpu with it")
            }
            _ => Ok(GruPlan::only(forced)),
        }
    }

    pub fn uses_cpu_kernel(&self) -> bool {
        self.train == GruImpl::CpuKernel || self.eval == GruImpl::CpuKernel
    }
}

/// A resolved device, GRU plan and CPU thread count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub device: Device,
    pub gru: GruPlan,
    /// CPU threads for the GRU kernel (or for libtorch without it).
    pub threads: usize,
}

impl Placement {
    pub fn resolve(
        device: DeviceChoice,
        gru: GruChoice,
        recurrent_dropout: f64,
        threads: usize,
    ) -> Result<Placement> {
        let device = device.resolve()?;
        Ok(Placement {
            device,
            gru: GruPlan::choose(gru, device, recurrent_dropout)?,
            threads,
        })
    }

    /// Gives the CPU threads to whoever does the heavy work. With the CPU
    /// kernel that is the kernel (and the fused Adam) on their own threads,
    /// and libtorch is kept to one: its OpenMP workers spin for a while
    /// after each parallel region and would take the cores from the
    /// kernel's threads (measured: 3.5x slower steps with libtorch on two
    /// threads as well).
    pub fn share_threads(&self) {
        let libtorch = if self.gru.uses_cpu_kernel() {
            1
        } else {
            self.threads
        };
        tch::set_num_threads(libtorch as i32);
    }

    /// `cpu` or `cuda:N`, as logs and `config.json` write it.
    pub fn device_name(&self) -> String {
        match self.device {
            Device::Cpu => "cpu".to_owned(),
            Device::Cuda(n) => format!("cuda:{n}"),
            other => format!("{other:?}"),
        }
    }
}

/// All cores: what `--threads` defaults to.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_flag_parses() {
        assert_eq!("auto".parse(), Ok(DeviceChoice::Auto));
        assert_eq!("cuda:1".parse(), Ok(DeviceChoice::Cuda(1)));
        assert!("gpu".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn auto_takes_the_kernel_on_a_cpu_and_cudnn_on_cuda_where_it_can() {
        let cpu = GruPlan::choose(GruChoice::Auto, Device::Cpu, 0.2).unwrap();
        assert_eq!(cpu, GruPlan::only(GruImpl::CpuKernel));
        let cuda = GruPlan::choose(GruChoice::Auto, Device::Cuda(0), 0.2).unwrap();
        assert_eq!((cuda.train, cuda.eval), (GruImpl::OpByOp, GruImpl::Fused));
        let cuda = GruPlan::choose(GruChoice::Auto, Device::Cuda(0), 0.0).unwrap();
        assert_eq!(cuda, GruPlan::only(GruImpl::Fused));
    }

    #[test]
    fn a_forced_implementation_that_cannot_run_is_refused() {
        assert!(GruPlan::choose(GruChoice::Fused, Device::Cpu, 0.2).is_err());
        assert!(GruPlan::choose(GruChoice::CpuKernel, Device::Cuda(0), 0.0).is_err());
        let forced = GruPlan::choose(GruChoice::OpByOp, Device::Cpu, 0.2).unwrap();
        assert_eq!(forced, GruPlan::only(GruImpl::OpByOp));
    }
}
