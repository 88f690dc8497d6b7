//! What can be checked without a GPU: the kernels compile for each
//! architecture we support with nothing spilled to local memory, and the
//! host-side rules. Their numbers are checked on a GPU (`tests/cuda.rs`).
use super::*;

/// Ampere (A100), Hopper (H100, H200), Blackwell (B200).
const ARCHITECTURES: [u32; 3] = [80, 90, 100];

/// The `ptxas info : Used N registers, ... N bytes spill stores` lines of
/// each kernel in a compile log, as (kernel, registers, spilled bytes).
fn register_report(log: &str) -> Vec<(String, u32, u32)> {
    let mut report = Vec::new();
    let mut kernel = String::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            kernel = rest.split('\'').next().unwrap_or_default().to_owned();
        }
        if let Some(rest) = line.split("bytes stack frame, ").nth(1) {
            let spilled: u32 = rest.split_whitespace().next().unwrap().parse().unwrap();
            report.push((kernel.clone(), 0, spilled));
        }
        if let Some(rest) = line.split("Used ").nth(1) {
            let registers: u32 = rest.split_whitespace().next().unwrap().parse().unwrap();
            if let Some(last) = report.last_mut() {
                last.1 = registers;
            }
        }
    }
    report
}

#[test]
fn the_gru_kernels_compile_for_each_architecture_without_spilling() {
    for arch in ARCHITECTURES {
        let (cubin, log) = compile_gru(arch, 64).unwrap();
        assert!(!cubin.is_empty());
        let report = register_report(&log);
        // Three kernels for each rows-per-block variant.
        assert_eq!(report.len(), 3 * ROW_VARIANTS.len(), "sm_{arch}:\n{log}");
        for (kernel, registers, spilled) in report {
            assert_eq!(spilled, 0, "sm_{arch} {kernel} spills:\n{log}");
            assert!(registers > 64, "sm_{arch} {kernel}: {registers} registers");
        }
    }
}

#[test]
fn the_largest_layer_compiles_without_spilling_and_a_larger_one_is_refused() {
    let (_, log) = compile_gru(90, MAX_UNITS).unwrap();
    assert!(
        register_report(&log)
            .iter()
            .all(|(_, _, spilled)| *spilled == 0),
        "{log}"
    );
    let (_, log) = compile_gru(90, 50).unwrap();
    assert!(
        register_report(&log)
            .iter()
            .all(|(_, _, spilled)| *spilled == 0),
        "{log}"
    );
    let refused = compile_gru(90, MAX_UNITS + 1).err().unwrap().to_string();
    assert!(refused.contains("at most 64 units"), "{refused}");
}

#[test]
fn the_step_kernels_compile_for_each_architecture_without_spilling() {
    for arch in ARCHITECTURES {
        let options = ["--ptxas-options=-v".to_owned()];
        let compiled = nvrtc::compile(step_kernels::SOURCE, "step.cu", arch, &options).unwrap();
        assert!(!compiled.cubin.is_empty());
        let report = register_report(&compiled.log);
        // Adam, the binary head, the embedding scatter and gather.
        assert_eq!(report.len(), 4, "sm_{arch}:\n{}", compiled.log);
        assert!(
            report.iter().all(|(_, _, spilled)| *spilled == 0),
            "{}",
            compiled.log
        );
    }
}

#[test]
fn a_compile_error_is_reported_with_the_compilers_message() {
    let error = nvrtc::compile("this is not C++", "broken.cu", 90, &[])
        .err()
        .unwrap();
    let text = format!("{error:#}");
    assert!(
        text.contains("broken.cu") && text.contains("sm_90"),
        "{text}"
    );
}

#[test]
fn rows_per_block_keep_every_block_resident() {
    // An H100 has 132 multiprocessors.
    assert_eq!(rows_per_block(32, 132), 1);
    assert_eq!(rows_per_block(264, 132), 1);
    assert_eq!(rows_per_block(265, 132), 2);
    assert_eq!(rows_per_block(1024, 132), 4);
    assert_eq!(rows_per_block(100_000, 132), 8);
}

#[test]
fn tensors_the_kernels_cannot_read_are_refused_by_name() {
    let t = Tensor::zeros([2, 3], (Kind::Float, Device::Cpu));
    let gpu = Device::Cuda(0);
    let wrong_shape = check_tensor("bias", &t, Kind::Float, &[2, 4], Device::Cpu);
    assert!(wrong_shape
        .unwrap_err()
        .to_string()
        .contains("bias: expected shape [2, 4]"));
    let wrong_kind = check_tensor("ids", &t, Kind::Int64, &[2, 3], Device::Cpu);
    assert!(wrong_kind
        .unwrap_err()
        .to_string()
        .contains("ids: expected Int64"));
    let wrong_device = check_tensor("tape", &t, Kind::Float, &[2, 3], gpu);
    assert!(wrong_device
        .unwrap_err()
        .to_string()
        .contains("tape: expected it on Cuda(0)"));
    let strided = check_tensor("x", &t.tr(), Kind::Float, &[3, 2], Device::Cpu);
    assert!(strided
        .unwrap_err()
        .to_string()
        .contains("x: must be contiguous"));
}

#[test]
fn a_layer_too_large_is_refused_before_anything_is_compiled() {
    assert!(check_layer(64).is_ok());
    assert!(check_layer(MAX_UNITS).is_ok());
    assert!(check_layer(MAX_UNITS + 1).is_err());
    assert!(check_layer(0).is_err());
}

#[test]
fn a_cached_cubin_is_named_by_everything_that_shapes_it() {
    let path = |source: &str, arch, units| {
        nvrtc::cache_path(source, "gru", arch, &gru_options(units)).unwrap()
    };
    let Some(base) = path(GRU_SOURCE, 90, 64) else {
        return; // no HOME or XDG_CACHE_HOME: nothing is cached
    };
    assert_eq!(path(GRU_SOURCE, 90, 64), Some(base.clone()));
    for other in [
        path(GRU_SOURCE, 80, 64),
        path(GRU_SOURCE, 90, 32),
        path("// changed", 90, 64),
    ] {
        assert_ne!(other, Some(base.clone()));
    }
}

#[test]
fn only_a_whole_cached_cubin_is_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache").join("k.cubin");
    let cubin = b"\x7fELF pretend cubin bytes".to_vec();
    nvrtc::store(&path, &cubin);
    assert_eq!(nvrtc::read_cached(&path), Some(cubin.clone()));
    let whole = std::fs::read(&path).unwrap();
    std::fs::write(&path, &whole[..whole.len() - 3]).unwrap();
    assert_eq!(nvrtc::read_cached(&path), None, "truncated");
    std::fs::write(&path, &whole[..10]).unwrap();
    assert_eq!(nvrtc::read_cached(&path), None, "shorter than a digest");
    assert_eq!(nvrtc::read_cached(&dir.path().join("absent")), None);
}
