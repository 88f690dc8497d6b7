//! Tests against a naive f64 reference written straight from the equations
//! (itself checked by central finite differences), on every instruction set
//! this CPU has, every mask configuration, odd sizes and 1/2/3 threads.

use super::forward::EVAL_BLOCK;
use super::packed::padded;
use super::*;

/// splitmix64: deterministic test data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(-scale, scale)).collect()
    }
    /// Dropout masks: 0 with probability 0.2, else 1/0.8.
    fn mask(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                if self.uniform(0.0, 1.0) < 0.2 {
                    0.0
                } else {
                    1.25
                }
            })
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum InMask {
    None,
    Shared,
    PerGate,
}

/// One test problem with owned data.
struct Case {
    b: usize,
    t: usize,
    d: usize,
    h: usize,
    kernel: Vec<f32>,
    bias: Vec<f32>,
    rkernel: Vec<f32>,
    rbias: Vec<f32>,
    x: Vec<f32>,
    in_kind: InMask,
    in_masks: Vec<f32>,
    rec_masks: Option<Vec<f32>>,
    /// d loss / d h_T for the loss `sum(c * h_T)`.
    c: Vec<f32>,
}

impl Case {
    fn new(b: usize, t: usize, d: usize, h: usize, in_kind: InMask, rec: bool, seed: u64) -> Case {
        let mut r = Rng(seed);
        let in_n = match in_kind {
            InMask::None => 0,
            InMask::Shared => b * d,
            InMask::PerGate => 3 * b * d,
        };
        Case {
            b,
            t,
            d,
            h,
            kernel: r.vec(d * 3 * h, 1.5 / (d as f32).sqrt()),
            bias: r.vec(3 * h, 0.3),
            rkernel: r.vec(h * 3 * h, 1.5 / (h as f32).sqrt()),
            rbias: r.vec(3 * h, 0.3),
            x: r.vec(b * t * d, 1.0),
            in_kind,
            in_masks: r.mask(in_n),
            rec_masks: rec.then(|| r.mask(3 * b * h)),
            c: r.vec(b * h, 1.0),
        }
    }
    fn weights(&self) -> GruWeights<'_> {
        GruWeights {
            input_dim: self.d,
            units: self.h,
            kernel: &self.kernel,
            bias: &self.bias,
            recurrent_kernel: &self.rkernel,
            recurrent_bias: &self.rbias,
        }
    }
    fn sequences(&self) -> Sequences<'_> {
        Sequences {
            data: &self.x,
            batch: self.b,
            steps: self.t,
        }
    }
    fn masks(&self) -> Masks<'_> {
        let input = match self.in_kind {
            InMask::None => InputMasks::None,
            InMask::Shared => InputMasks::Shared(&self.in_masks),
            InMask::PerGate => InputMasks::PerGate(&self.in_masks),
        };
        Masks {
            input,
            recurrent: self.rec_masks.as_deref(),
        }
    }
    fn in_mask(&self, g: usize, b: usize, k: usize) -> f64 {
        match self.in_kind {
            InMask::None => 1.0,
            InMask::Shared => self.in_masks[b * self.d + k] as f64,
            InMask::PerGate => self.in_masks[(g * self.b + b) * self.d + k] as f64,
        }
    }
    fn rec_mask(&self, g: usize, b: usize, k: usize) -> f64 {
        self.rec_masks
            .as_ref()
            .map_or(1.0, |m| m[(g * self.b + b) * self.h + k] as f64)
    }
    fn run(&self, engine: Engine) -> (Vec<f32>, AllGradients) {
        let w = self.weights();
        let mut tape = Tape::default();
        let out = engine.forward(&w, self.sequences(), self.masks(), Some(&mut tape));
        (out, self.backward(engine, &mut tape))
    }

    /// The backward of the forward that filled `tape`.
    fn backward(&self, engine: Engine, tape: &mut Tape) -> AllGradients {
        let mut d_x = vec![f32::NAN; self.x.len()];
        let g = engine.backward(&self.weights(), &self.x, tape, &self.c, &mut d_x);
        AllGradients {
            d_x,
            d_kernel: g.d_kernel.clone(),
            d_bias: g.d_bias.clone(),
            d_recurrent_kernel: g.d_recurrent_kernel.clone(),
            d_recurrent_bias: g.d_recurrent_bias.clone(),
        }
    }
}

/// The f64 reference parameters, perturbable for finite differences.
#[derive(Clone)]
struct RefParams {
    kernel: Vec<f64>,
    bias: Vec<f64>,
    rkernel: Vec<f64>,
    rbias: Vec<f64>,
    x: Vec<f64>,
}

impl RefParams {
    fn of(c: &Case) -> RefParams {
        let f = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
        RefParams {
            kernel: f(&c.kernel),
            bias: f(&c.bias),
            rkernel: f(&c.rkernel),
            rbias: f(&c.rbias),
            x: f(&c.x),
        }
    }
}

fn sigmoid64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// What one reference step keeps for the backward pass.
struct RefStep {
    xm: [Vec<f64>; 3],
    hm: [Vec<f64>; 3],
    hprev: Vec<f64>,
    z: Vec<f64>,
    r: Vec<f64>,
    hh: Vec<f64>,
    rh: Vec<f64>,
}

/// The equations, one sample and one step at a time, in f64.
fn ref_forward(c: &Case, p: &RefParams) -> (Vec<f64>, Vec<Vec<RefStep>>) {
    let (d, h, h3) = (c.d, c.h, 3 * c.h);
    let mut out = Vec::new();
    let mut tapes = Vec::new();
    for b in 0..c.b {
        let mut hs = vec![0.0; h];
        let mut tape = Vec::new();
        for t in 0..c.t {
            let xt = &p.x[(b * c.t + t) * d..(b * c.t + t + 1) * d];
            let xm: [Vec<f64>; 3] =
                std::array::from_fn(|g| (0..d).map(|k| xt[k] * c.in_mask(g, b, k)).collect());
            let hm: [Vec<f64>; 3] =
                std::array::from_fn(|g| (0..h).map(|k| hs[k] * c.rec_mask(g, b, k)).collect());
            let proj = |g: usize, j: usize| -> (f64, f64) {
                let xi = (0..d)
                    .map(|k| xm[g][k] * p.kernel[k * h3 + g * h + j])
                    .sum::<f64>()
                    + p.bias[g * h + j];
                let re = (0..h)
                    .map(|k| hm[g][k] * p.rkernel[k * h3 + g * h + j])
                    .sum::<f64>()
                    + p.rbias[g * h + j];
                (xi, re)
            };
            let (mut z, mut r, mut hh, mut rh) =
                (vec![0.0; h], vec![0.0; h], vec![0.0; h], vec![0.0; h]);
            for j in 0..h {
                let (xz, rz) = proj(0, j);
                let (xr, rr) = proj(1, j);
                let (xh, rhj) = proj(2, j);
                z[j] = sigmoid64(xz + rz);
                r[j] = sigmoid64(xr + rr);
                hh[j] = (xh + r[j] * rhj).tanh();
                rh[j] = rhj;
            }
            let hprev = hs.clone();
            for j in 0..h {
                hs[j] = z[j] * hprev[j] + (1.0 - z[j]) * hh[j];
            }
            tape.push(RefStep {
                xm,
                hm,
                hprev,
                z,
                r,
                hh,
                rh,
            });
        }
        out.extend_from_slice(&hs);
        tapes.push(tape);
    }
    (out, tapes)
}

fn ref_loss(c: &Case, p: &RefParams) -> f64 {
    let (out, _) = ref_forward(c, p);
    out.iter().zip(&c.c).map(|(&a, &b)| a * b as f64).sum()
}

/// Backpropagation through time of `sum(c * h_T)`, straight from the
/// equations; returns `(d_x, d_kernel, d_bias, d_rkernel, d_rbias)`.
fn ref_backward(c: &Case, p: &RefParams) -> [Vec<f64>; 5] {
    let (d, h, h3) = (c.d, c.h, 3 * c.h);
    let (_, tapes) = ref_forward(c, p);
    let mut dx = vec![0.0; c.b * c.t * d];
    let (mut dw, mut db) = (vec![0.0; d * h3], vec![0.0; h3]);
    let (mut du, mut dbr) = (vec![0.0; h * h3], vec![0.0; h3]);
    for (b, tape) in tapes.iter().enumerate() {
        let mut dh: Vec<f64> = (0..h).map(|j| c.c[b * h + j] as f64).collect();
        for (t, s) in tape.iter().enumerate().rev() {
            let mut da = [vec![0.0; h], vec![0.0; h], vec![0.0; h]];
            let mut drec = [vec![0.0; h], vec![0.0; h], vec![0.0; h]];
            let mut dprev = vec![0.0; h];
            for j in 0..h {
                let dz = dh[j] * (s.hprev[j] - s.hh[j]);
                let dhh = dh[j] * (1.0 - s.z[j]);
                da[0][j] = dz * s.z[j] * (1.0 - s.z[j]);
                da[2][j] = dhh * (1.0 - s.hh[j] * s.hh[j]);
                let dr = da[2][j] * s.rh[j];
                da[1][j] = dr * s.r[j] * (1.0 - s.r[j]);
                drec[0][j] = da[0][j];
                drec[1][j] = da[1][j];
                drec[2][j] = da[2][j] * s.r[j];
                dprev[j] = dh[j] * s.z[j];
            }
            for g in 0..3 {
                for j in 0..h {
                    db[g * h + j] += da[g][j];
                    dbr[g * h + j] += drec[g][j];
                    for k in 0..d {
                        dw[k * h3 + g * h + j] += s.xm[g][k] * da[g][j];
                        dx[(b * c.t + t) * d + k] +=
                            c.in_mask(g, b, k) * p.kernel[k * h3 + g * h + j] * da[g][j];
                    }
                    for k in 0..h {
                        du[k * h3 + g * h + j] += s.hm[g][k] * drec[g][j];
                        dprev[k] +=
                            c.rec_mask(g, b, k) * p.rkernel[k * h3 + g * h + j] * drec[g][j];
                    }
                }
            }
            dh = dprev;
        }
    }
    [dx, dw, db, du, dbr]
}

/// `|got - want| <= tol * (|want| + rms(want))` for every element.
fn assert_close(name: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let rms = (want.iter().map(|w| w * w).sum::<f64>() / want.len().max(1) as f64).sqrt();
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            err <= tol * (w.abs() + rms),
            "{name}[{i}]: got {g}, want {w} (err {err:e}, rms {rms:e})"
        );
    }
}

/// The input gradient with the parameters' (`Gradients`).
struct AllGradients {
    d_x: Vec<f32>,
    d_kernel: Vec<f32>,
    d_bias: Vec<f32>,
    d_recurrent_kernel: Vec<f32>,
    d_recurrent_bias: Vec<f32>,
}

fn assert_same_grads(a: &AllGradients, b: &AllGradients, tag: &str) {
    assert_eq!(a.d_x, b.d_x, "{tag}: d_x");
    assert_eq!(a.d_kernel, b.d_kernel, "{tag}: d_kernel");
    assert_eq!(a.d_bias, b.d_bias, "{tag}: d_bias");
    assert_eq!(
        a.d_recurrent_kernel, b.d_recurrent_kernel,
        "{tag}: d_recurrent_kernel"
    );
    assert_eq!(
        a.d_recurrent_bias, b.d_recurrent_bias,
        "{tag}: d_recurrent_bias"
    );
}

#[test]
fn reference_backward_matches_finite_differences() {
    for (in_kind, rec) in [
        (InMask::PerGate, true),
        (InMask::Shared, false),
        (InMask::None, true),
    ] {
        let c = Case::new(2, 3, 3, 5, in_kind, rec, 7);
        let p = RefParams::of(&c);
        let grads = ref_backward(&c, &p);
        type Field = fn(&mut RefParams) -> &mut Vec<f64>;
        let fields: [(&str, Field); 5] = [
            ("d_x", |p| &mut p.x),
            ("d_kernel", |p| &mut p.kernel),
            ("d_bias", |p| &mut p.bias),
            ("d_recurrent_kernel", |p| &mut p.rkernel),
            ("d_recurrent_bias", |p| &mut p.rbias),
        ];
        for ((name, field), analytic) in fields.iter().zip(&grads) {
            for (i, &a) in analytic.iter().enumerate() {
                let eps = 1e-6;
                let mut plus = p.clone();
                field(&mut plus)[i] += eps;
                let mut minus = p.clone();
                field(&mut minus)[i] -= eps;
                let fd = (ref_loss(&c, &plus) - ref_loss(&c, &minus)) / (2.0 * eps);
                assert!(
                    (fd - a).abs() <= 1e-7 + 1e-6 * a.abs(),
                    "{name}[{i}] ({in_kind:?}, rec {rec}): analytic {a}, fd {fd}"
                );
            }
        }
    }
}

/// Sizes: batch 1, 3, 33; steps 1, 7; units 5, 17, 64; D 3, 16, 130.
const SIZES: [(usize, usize, usize, usize); 5] = [
    (1, 1, 3, 5),
    (3, 7, 130, 17),
    (33, 7, 3, 5),
    (5, 7, 16, 64),
    (9, 4, 20, 33),
];

#[test]
fn forward_and_backward_match_reference() {
    for engine in Engine::all_available(1) {
        for (si, &(b, t, d, h)) in SIZES.iter().enumerate() {
            for in_kind in [InMask::None, InMask::Shared, InMask::PerGate] {
                for rec in [false, true] {
                    let c = Case::new(b, t, d, h, in_kind, rec, 100 + si as u64);
                    let p = RefParams::of(&c);
                    let (want_out, _) = ref_forward(&c, &p);
                    let want = ref_backward(&c, &p);
                    let (out, g) = c.run(engine);
                    let tag = format!(
                        "{} b{b} t{t} d{d} h{h} {in_kind:?} rec {rec}",
                        engine.instruction_set()
                    );
                    assert_close(&format!("{tag} h_T"), &out, &want_out, 1e-5);
                    assert_close(&format!("{tag} d_x"), &g.d_x, &want[0], 2e-5);
                    assert_close(&format!("{tag} d_kernel"), &g.d_kernel, &want[1], 2e-5);
                    assert_close(&format!("{tag} d_bias"), &g.d_bias, &want[2], 2e-5);
                    assert_close(
                        &format!("{tag} d_recurrent_kernel"),
                        &g.d_recurrent_kernel,
                        &want[3],
                        2e-5,
                    );
                    assert_close(
                        &format!("{tag} d_recurrent_bias"),
                        &g.d_recurrent_bias,
                        &want[4],
                        2e-5,
                    );
                    // Thread count changes nothing, bit for bit.
                    for threads in [2, 3] {
                        let (out2, g2) = c.run(Engine { threads, ..engine });
                        assert_eq!(out, out2, "{tag}: h_T with {threads} threads");
                        assert_same_grads(&g, &g2, &format!("{tag}, {threads} threads"));
                    }
                }
            }
        }
    }
}

/// AVX-512 and AVX2 (whichever this CPU has) agree bit for bit, whatever
/// their tile shapes: each element of a product accumulates the same FMAs
/// in the same order. (The scalar fallback rounds differently.)
#[test]
fn every_simd_instruction_set_gives_the_same_bits() {
    let engines: Vec<Engine> = Engine::all_available(2)
        .into_iter()
        .filter(|e| e.instruction_set() != "scalar")
        .collect();
    for &(b, t, d, h) in &SIZES {
        for in_kind in [InMask::None, InMask::PerGate] {
            let c = Case::new(b, t, d, h, in_kind, true, 7);
            let (want, want_g) = c.run(engines[0]);
            for &engine in &engines[1..] {
                let tag = format!(
                    "{} against {} b{b} t{t} d{d} h{h} {in_kind:?}",
                    engine.instruction_set(),
                    engines[0].instruction_set()
                );
                let (out, g) = c.run(engine);
                assert_eq!(out, want, "{tag}: h_T");
                assert_same_grads(&g, &want_g, &tag);
            }
        }
    }
}

#[test]
fn a_product_with_a_in_two_blocks_gives_the_bits_of_a_in_one() {
    use super::matrix::{gemm, gemm_joined, Epilogue, Matrix, MatrixMut};
    let (m, k_head, k_tail, n) = (7, 5, 9, 48);
    let k = k_head + k_tail;
    let mut rng = Rng(11);
    let a = rng.vec(m * k, 1.0);
    // The tail's columns in a buffer of their own, with another row stride.
    let tail_ld = k_tail + 3;
    let mut tail = vec![f32::NAN; m * tail_ld];
    for i in 0..m {
        tail[i * tail_ld..][..k_tail].copy_from_slice(&a[i * k + k_head..][..k_tail]);
    }
    let b = rng.vec(k * n, 1.0);
    let c0 = rng.vec(m * n, 1.0);
    for engine in Engine::all_available(1) {
        let kern = engine.kernels;
        let mut whole = c0.clone();
        let b_mat = Matrix::row_major(&b, k, n, n);
        let a_mat = Matrix::row_major(&a, m, k, k);
        gemm(
            kern,
            a_mat,
            b_mat,
            MatrixMut::row_major(&mut whole, m, n, n),
            Epilogue::Add,
        );
        let mut joined = c0.clone();
        let blocks = [
            Matrix::row_major(&a, m, k_head, k),
            Matrix::row_major(&tail, m, k_tail, tail_ld),
        ];
        let c = MatrixMut::row_major(&mut joined, m, n, n);
        gemm_joined(kern, blocks, b_mat, c, Epilogue::Add);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&joined), bits(&whole), "{}", engine.instruction_set());
    }
}

#[test]
fn tape_is_reusable_across_batch_shapes() {
    let engine = Engine::new(2);
    let mut tape = Tape::default();
    for &(b, t, d, h) in &[(5, 7, 16, 64), (2, 3, 16, 64), (5, 7, 16, 64)] {
        let c = Case::new(b, t, d, h, InMask::PerGate, true, 3);
        let w = c.weights();
        let out = engine.forward(&w, c.sequences(), c.masks(), Some(&mut tape));
        let g = c.backward(engine, &mut tape);
        let (out1, g1) = c.run(engine);
        assert_eq!(out, out1);
        assert_same_grads(&g, &g1, &format!("reused tape b{b} t{t}"));
    }
}

#[test]
fn evaluation_paths_agree() {
    for engine in Engine::all_available(2) {
        for &(b, t, d, h) in &SIZES {
            let c = Case::new(b, t, d, h, InMask::None, false, 11);
            let w = c.weights();
            let mut r = Rng(5);
            let vocab = 37;
            let emb = r.vec(vocab * d, 1.0);
            let ids: Vec<i64> = (0..b * t)
                .map(|_| (r.next() % vocab as u64) as i64)
                .collect();
            let x: Vec<f32> = ids
                .iter()
                .flat_map(|&i| emb[i as usize * d..(i as usize + 1) * d].to_vec())
                .collect();
            let table = engine.projection_table(&w, &emb);
            // The table is E W + b.
            for v in 0..vocab {
                for j in 0..3 * h {
                    let want: f64 = (0..d)
                        .map(|k| emb[v * d + k] as f64 * c.kernel[k * 3 * h + j] as f64)
                        .sum::<f64>()
                        + c.bias[j] as f64;
                    assert!((table[v * 3 * h + j] as f64 - want).abs() < 1e-5 * (1.0 + want.abs()));
                }
            }
            let x = Sequences {
                data: &x,
                batch: b,
                steps: t,
            };
            let ids = TokenIds {
                ids: &ids,
                batch: b,
                steps: t,
            };
            let one_thread = Engine {
                threads: 1,
                ..engine
            };
            let plain = one_thread.forward(&w, x, Masks::NONE, None);
            for threads in [1, 2] {
                let engine = Engine { threads, ..engine };
                let from_table = engine.forward_from_table(&w, &table, ids);
                assert_eq!(
                    plain,
                    from_table,
                    "{} b{b} t{t} d{d} h{h} threads {threads}",
                    engine.instruction_set()
                );
                let plain_t = engine.forward(&w, x, Masks::NONE, None);
                assert_eq!(plain, plain_t);
            }
            // A filled tape does not change the forward result.
            let mut tape = Tape::default();
            let taped = engine.forward(&w, x, Masks::NONE, Some(&mut tape));
            assert_eq!(plain, taped);
        }
    }
}

/// Batches spanning several row blocks of EVAL_BLOCK agree with
/// one-sample runs, on every path.
#[test]
fn large_batch_blocks_agree() {
    let engine = Engine::new(2);
    let (b, t, d, h) = (2 * EVAL_BLOCK + 3, 3, 8, 16);
    let c = Case::new(b, t, d, h, InMask::None, false, 9);
    let w = c.weights();
    let ids: Vec<i64> = (0..(b * t) as i64).collect();
    let ids = TokenIds {
        ids: &ids,
        batch: b,
        steps: t,
    };
    let table = engine.projection_table(&w, &c.x);
    let mut tape = Tape::default();
    let runs = [
        engine.forward(&w, c.sequences(), Masks::NONE, None),
        engine.forward(&w, c.sequences(), Masks::NONE, Some(&mut tape)),
        engine.forward_from_table(&w, &table, ids),
    ];
    for i in [0, EVAL_BLOCK, b - 1] {
        let x1 = Sequences {
            data: &c.x[i * t * d..(i + 1) * t * d],
            batch: 1,
            steps: t,
        };
        let one = Engine::new(1).forward(&w, x1, Masks::NONE, None);
        for all in &runs {
            assert_eq!(&all[i * h..(i + 1) * h], &one[..], "sample {i}");
        }
    }
}

#[test]
fn masked_state_feeds_only_the_products() {
    // Recurrent masks of all zeros remove U from the step, but the carried
    // state z*h + (1-z)*hh must still be the unmasked h: the result equals
    // a run with U = 0 and no recurrent masks, and differs from h-carried-as-0.
    let engine = Engine::new(1);
    let mut c = Case::new(3, 5, 6, 17, InMask::None, true, 21);
    c.rec_masks = Some(vec![0.0; 3 * c.b * c.h]);
    let (masked, _) = c.run(engine);
    let mut c0 = Case::new(3, 5, 6, 17, InMask::None, false, 21);
    c0.rkernel.fill(0.0);
    let (no_u, _) = c0.run(engine);
    let p0 = RefParams::of(&c0);
    let (want, _) = ref_forward(&c0, &p0);
    assert_close("no-U run", &no_u, &want, 1e-5);
    for (a, b) in masked.iter().zip(&no_u) {
        assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
    }
}

#[test]
fn input_masks_are_constant_over_time() {
    // A shared input mask is the same as masking x at every step.
    let engine = Engine::new(1);
    let c = Case::new(4, 6, 10, 17, InMask::Shared, false, 31);
    let (masked, _) = c.run(engine);
    let mut c1 = Case::new(4, 6, 10, 17, InMask::None, false, 31);
    for b in 0..c.b {
        for t in 0..c.t {
            for k in 0..c.d {
                c1.x[(b * c.t + t) * c.d + k] *= c.in_masks[b * c.d + k];
            }
        }
    }
    let (premasked, _) = c1.run(engine);
    for (a, b) in masked.iter().zip(&premasked) {
        assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
    }
}

#[test]
fn the_three_masks_act_separately() {
    // Changing one gate's mask changes that gate's activations only (read
    // from the tape). Input masks: first step; recurrent masks: second step
    // (the first sees h_0 = 0).
    let engine = Engine::new(1);
    let (b, d, h) = (2, 8, 17);
    let gates_at = |c: &Case, t_read: usize| -> [Vec<f32>; 3] {
        let mut tape = Tape::default();
        let w = c.weights();
        engine.forward(&w, c.sequences(), c.masks(), Some(&mut tape));
        let hp = padded(c.h);
        std::array::from_fn(|g| {
            (0..c.b)
                .flat_map(|s| {
                    let o = ((s * c.t + t_read) * 4 + g) * hp;
                    tape.record.gates[o..o + c.h].to_vec()
                })
                .collect()
        })
    };
    for recurrent in [false, true] {
        let base = Case::new(b, 2, d, h, InMask::PerGate, true, 41);
        let t_read = usize::from(recurrent);
        let g0 = gates_at(&base, t_read);
        for changed in 0..3 {
            let mut c = Case::new(b, 2, d, h, InMask::PerGate, true, 41);
            if recurrent {
                let m = c.rec_masks.as_mut().unwrap();
                for v in &mut m[changed * b * h..(changed + 1) * b * h] {
                    *v = 1.25 - *v;
                }
            } else {
                for v in &mut c.in_masks[changed * b * d..(changed + 1) * b * d] {
                    *v = 1.25 - *v;
                }
            }
            let g1 = gates_at(&c, t_read);
            for g in 0..3 {
                // The h gate's candidate also depends on r, so a change of
                // r's mask reaches hh: only z and r are isolated that way.
                let expect_same = g != changed && !(g == 2 && changed == 1);
                assert_eq!(
                    g0[g] == g1[g],
                    expect_same,
                    "recurrent {recurrent}: mask {changed} changed, gate {g}"
                );
            }
        }
    }
}

#[test]
fn activations_are_accurate() {
    for engine in Engine::all_available(1) {
        let kern = engine.kernels;
        // A dense sweep of [-90, 90] plus the small-|x| region and the
        // branch points of the approximations.
        let mut xs: Vec<f32> = (-1_800_000..=1_800_000).map(|i| i as f32 * 5e-5).collect();
        xs.extend((-200..200).map(|i| i as f32 * 1e-6));
        xs.extend([
            0.625,
            -0.625,
            0.624_999_9,
            0.312_5,
            44.0,
            87.0,
            -87.0,
            88.0,
            1e-30,
            -1e-30,
        ]);
        while !xs.len().is_multiple_of(16) {
            xs.push(0.0);
        }
        let mut y = vec![0.0f32; xs.len()];
        for (which, name) in [(0, "sigmoid"), (1, "tanh")] {
            // SAFETY: xs and y hold xs.len() (a multiple of 16) floats; the
            // kernel set is one this CPU has.
            unsafe { (kern.activation)(which, xs.as_ptr(), y.as_mut_ptr(), xs.len()) };
            let mut worst = 0.0f64;
            for (&x, &got) in xs.iter().zip(&y) {
                let want = if which == 0 {
                    sigmoid64(x as f64)
                } else {
                    (x as f64).tanh()
                };
                if want.abs() < 1e-37 {
                    assert!(
                        (got as f64 - want).abs() < 2e-38,
                        "{name}({x}) = {got}, want {want}"
                    );
                    continue;
                }
                worst = worst.max((got as f64 - want).abs() / want.abs());
            }
            assert!(
                worst < 4e-7,
                "{} {name}: max relative error {worst:e}",
                kern.name
            );
            eprintln!("{} {name}: max relative error {worst:e}", kern.name);
        }
    }
}

#[test]
fn empty_batches_and_sequences() {
    let engine = Engine::new(2);
    for (b, t) in [(0, 5), (3, 0), (0, 0)] {
        let c = Case::new(b, t, 4, 5, InMask::PerGate, true, 51);
        let (out, g) = c.run(engine);
        assert_eq!(out, vec![0.0; b * c.h], "h_T = h_0 = 0 with no steps");
        assert!(g.d_x.is_empty() || t > 0);
        assert!(g
            .d_kernel
            .iter()
            .chain(&g.d_recurrent_kernel)
            .all(|&v| v == 0.0));
        let table = engine.projection_table(&c.weights(), &[]);
        assert!(table.is_empty());
    }
}

#[test]
#[should_panic(expected = "x must be [B, T, D]")]
fn wrong_input_length_is_refused() {
    let c = Case::new(2, 3, 4, 5, InMask::None, false, 1);
    let x = Sequences {
        data: &c.x[1..],
        batch: 2,
        steps: 3,
    };
    Engine::new(1).forward(&c.weights(), x, Masks::NONE, None);
}

#[test]
#[should_panic(expected = "token id outside the table")]
fn token_ids_outside_the_table_are_refused() {
    let c = Case::new(1, 2, 4, 5, InMask::None, false, 1);
    let engine = Engine::new(1);
    let table = engine.projection_table(&c.weights(), &c.x);
    let ids = TokenIds {
        ids: &[0, 2],
        batch: 1,
        steps: 2,
    };
    engine.forward_from_table(&c.weights(), &table, ids);
}

#[test]
#[should_panic(expected = "not filled by forward")]
fn backward_needs_a_filled_tape() {
    let c = Case::new(1, 2, 4, 5, InMask::None, false, 1);
    let mut d_x = vec![0.0; c.x.len()];
    Engine::new(1).backward(&c.weights(), &c.x, &mut Tape::default(), &c.c, &mut d_x);
}
