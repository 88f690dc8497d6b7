//! Where a model runs: the device, which GRU implementation runs there in
//! training and in evaluation, and how the CPU threads are shared.
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::Device;

use crate::cuda;
use crate::gru_cuda::{GruKernels, StepKernels};

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
    CudaKernel,
    OpByOp,
    Fused,
}

/// An implementation of the GRU recurrence. All compute the same function;
/// they differ in speed and in what they can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GruImpl {
    /// Our fused CPU kernel (`gru_cpu`), forward and backward through time.
    CpuKernel,
    /// Our CUDA kernels (`gru_cuda`): the recurrence in one launch each way.
    CudaKernel,
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

    /// The rule: on a CPU our kernel; on CUDA our kernel, where it can run
    /// (a driver, NVRTC, a layer within its budget), in training and in
    /// evaluation, since it beats the other paths there (measured: see
    /// `docs/cuda.md`); else cuDNN, except for training with recurrent
    /// dropout, which cuDNN cannot do, where the op-by-op step runs (with
    /// a one-line notice saying why: a command chooses once). A forced
    /// choice runs in both modes, if it can, or is an error. Choosing the
    /// CUDA kernel compiles it, once a process, for a layer of `units`.
    pub fn choose(
        choice: GruChoice,
        device: Device,
        recurrent_dropout: f64,
        units: usize,
    ) -> Result<GruPlan> {
        let cuda_kernel = match device {
            Device::Cuda(ordinal) if matches!(choice, GruChoice::Auto | GruChoice::CudaKernel) => {
                GruKernels::get(ordinal, units).and_then(|_| StepKernels::get(ordinal).map(|_| ()))
            }
            _ => Ok(()),
        };
        let plan = GruPlan::choose_with(choice, device, recurrent_dropout, &cuda_kernel)?;
        if let (GruChoice::Auto, Device::Cuda(_), Err(why)) = (choice, device, &cuda_kernel) {
            eprintln!(
                "note: the CUDA GRU kernel cannot run here ({why:#}); using the {:?} GRU instead",
                plan.train
            );
        }
        Ok(plan)
    }

    /// [`GruPlan::choose`] given whether the CUDA kernel can run (checked
    /// only on a CUDA device).
    fn choose_with(
        choice: GruChoice,
        device: Device,
        recurrent_dropout: f64,
        cuda_kernel: &Result<()>,
    ) -> Result<GruPlan> {
        let forced = match choice {
            GruChoice::Auto if device == Device::Cpu => {
                return Ok(GruPlan::only(GruImpl::CpuKernel))
            }
            GruChoice::Auto if cuda_kernel.is_ok() => {
                return Ok(GruPlan::only(GruImpl::CudaKernel))
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
            GruChoice::CudaKernel => GruImpl::CudaKernel,
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
            GruImpl::CudaKernel if device == Device::Cpu => {
                bail!("the CUDA kernel runs on a GPU only: use --device cuda with it")
            }
            GruImpl::CudaKernel => match cuda_kernel {
                Ok(()) => Ok(GruPlan::only(forced)),
                Err(why) => bail!("--gru-implementation cuda-kernel: {why:#}"),
            },
            _ => Ok(GruPlan::only(forced)),
        }
    }

    pub fn uses_cpu_kernel(&self) -> bool {
        self.uses(GruImpl::CpuKernel)
    }

    /// Whether `gru` runs in training or in evaluation.
    pub fn uses(&self, gru: GruImpl) -> bool {
        self.train == gru || self.eval == gru
    }
}

/// What the flags ask of a training run's placement, resolved only in
/// planning ([`Placement::resolve`]): that may load libtorch's CUDA
/// backend and compile our kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacementChoice {
    pub device: DeviceChoice,
    pub gru: GruChoice,
    /// CPU threads, checked against the cores.
    pub threads: usize,
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
    /// The placement of `choice` for a GRU layer of `units` with this
    /// recurrent dropout.
    pub fn resolve(
        choice: PlacementChoice,
        recurrent_dropout: f64,
        units: usize,
    ) -> Result<Placement> {
        let device = choice.device.resolve()?;
        Ok(Placement {
            device,
            gru: GruPlan::choose(choice.gru, device, recurrent_dropout, units)?,
            threads: choice.threads,
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

/// Where a saved model runs (predict, evaluate, report): the device and the
/// CPU threads. Its GRU is chosen only once the model's size is known
/// ([`DeviceAndThreads::placement`]): the CUDA kernel is compiled for, and
/// has a budget of, units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceAndThreads {
    pub device: Device,
    pub threads: usize,
}

impl DeviceAndThreads {
    /// `--device` resolved (loading CUDA if it may be used).
    pub fn resolve(device: DeviceChoice, threads: usize) -> Result<DeviceAndThreads> {
        Ok(DeviceAndThreads {
            device: device.resolve()?,
            threads,
        })
    }

    /// The CPU: for the commands that infer there.
    pub fn cpu(threads: usize) -> DeviceAndThreads {
        DeviceAndThreads {
            device: Device::Cpu,
            threads,
        }
    }

    /// The placement of a saved layer of `units`, in evaluation (no dropout).
    pub fn placement(&self, units: usize) -> Result<Placement> {
        Ok(Placement {
            device: self.device,
            gru: GruPlan::choose(GruChoice::Auto, self.device, 0.0, units)?,
            threads: self.threads,
        })
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
    fn auto_takes_our_kernels_and_falls_back_where_the_cuda_kernel_cannot_run() {
        let ready = Ok(());
        let cpu = GruPlan::choose_with(GruChoice::Auto, Device::Cpu, 0.2, &ready).unwrap();
        assert_eq!(cpu, GruPlan::only(GruImpl::CpuKernel));
        let cuda = GruPlan::choose_with(GruChoice::Auto, Device::Cuda(0), 0.2, &ready).unwrap();
        assert_eq!(cuda, GruPlan::only(GruImpl::CudaKernel));
        let missing = Err(anyhow::anyhow!("NVRTC not found"));
        let cuda = GruPlan::choose_with(GruChoice::Auto, Device::Cuda(0), 0.2, &missing).unwrap();
        assert_eq!((cuda.train, cuda.eval), (GruImpl::OpByOp, GruImpl::Fused));
        let cuda = GruPlan::choose_with(GruChoice::Auto, Device::Cuda(0), 0.0, &missing).unwrap();
        assert_eq!(cuda, GruPlan::only(GruImpl::Fused));
    }

    #[test]
    fn a_forced_implementation_that_cannot_run_is_refused() {
        let ready = Ok(());
        assert!(GruPlan::choose_with(GruChoice::Fused, Device::Cpu, 0.2, &ready).is_err());
        assert!(GruPlan::choose_with(GruChoice::CpuKernel, Device::Cuda(0), 0.0, &ready).is_err());
        assert!(GruPlan::choose_with(GruChoice::CudaKernel, Device::Cpu, 0.0, &ready).is_err());
        let too_large = Err(anyhow::anyhow!(
            "the CUDA GRU kernel holds at most 64 units"
        ));
        let refused = GruPlan::choose_with(GruChoice::CudaKernel, Device::Cuda(0), 0.2, &too_large);
        assert!(refused
            .unwrap_err()
            .to_string()
            .contains("at most 64 units"));
        let forced = GruPlan::choose_with(GruChoice::OpByOp, Device::Cpu, 0.2, &ready).unwrap();
        assert_eq!(forced, GruPlan::only(GruImpl::OpByOp));
    }

    #[test]
    fn without_a_driver_a_forced_cuda_kernel_is_an_error_not_a_crash() {
        // On a machine with no GPU the kernels cannot be loaded.
        if crate::dynlib::Library::open(crate::cuda::DRIVER).is_ok() {
            return;
        }
        let refused = GruPlan::choose(GruChoice::CudaKernel, Device::Cuda(0), 0.2, 64);
        let text = refused.unwrap_err().to_string();
        assert!(
            text.contains("cuda-kernel") && text.contains("driver"),
            "{text}"
        );
    }
}
