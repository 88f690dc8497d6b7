#!/usr/bin/env python3
"""gru-imdb against the PyTorch reference, in one sitting on one machine.

Measures, on the real reviews (an aclImdb archive given by --archive):
  - seconds per training epoch, validation included, with the default flags
    (Keras-exact: recurrent dropout 0.2) and with --recurrent-dropout 0;
  - evaluation throughput over the 25,000 test reviews at batch 32 and 1024;
  - the whole `--epochs 5` run, process start to exit, archive downloaded but
    not yet prepared: wall seconds, peak memory and final test accuracy;
  - with --kernel-bench, the epoch against the kernel's own time for its
    work (issue 12's target: at most 1.2x), the kernel bench and the epoch
    taken in turns, best of each, as the host's noise moves both;
and runs ../shared/bench/torch_reference.py (variants `fused` and
`keras-exact`, and its throughput mode) on the same arrays right after, so
every figure is given as a ratio to PyTorch measured in the same sitting.

    python3 benches/compare.py --archive ../shared/data/aclImdb_labeled.tar.gz

--kernel-bench takes the executable of `cargo bench --bench gru_cpu`, which
`cargo bench --bench gru_cpu --no-run` builds and names; build it before
`make build`, as building it relinks target/release/gru-imdb.

Needs a release build (`make build`) and the project's .venv (torch from
scripts/setup-libtorch; numpy is installed into it when missing). Prints a
table and writes the figures as JSON (--out, default benches/out/compare.json).
Run it on a quiet machine: nothing else should be compiling or training.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "gru-imdb"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run(cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def timed(cmd):
    """Wall seconds and peak RSS (MiB) of a command, via /usr/bin/time."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v"] + [str(c) for c in cmd],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{proc.stdout}\n{proc.stderr}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return wall, rss_kb / 1024, proc.stdout


def kernel_bench(binary):
    """Best ms of the kernel's training forward and backward and of its
    evaluation from the projection table, at batch 32, with the share of
    the FMA peak that the bench measured for the first."""
    env = dict(os.environ, GRU_BENCH_ONLY="B=32")
    proc = subprocess.run([binary, "--bench"], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"--kernel-bench {binary} failed:\n{proc.stdout}\n{proc.stderr}")
    out = proc.stdout

    def best(row):
        m = re.search(re.escape(row) + r".*?best\s+([0-9.]+) ms.*?(\d+)% of peak", out)
        if not m:
            sys.exit(f"the kernel bench printed no row {row!r}:\n{out}")
        return float(m.group(1)), int(m.group(2))

    train_ms, share = best("train fwd+bwd B=32")
    table_ms, _ = best("eval forward_from_table B=32")
    return {"train_ms": train_ms, "train_share_of_peak": share, "table_ms": table_ms}


def kernel_ratio(binary, rounds, epoch_cmd):
    """The epoch's seconds against the kernel's own time for the same work
    (every training step's forward and backward and every validation
    batch, at the bench's best), `rounds` times in turns, best of each."""
    benches, epochs, steps = [], [], None
    for _ in range(rounds):
        benches.append(kernel_bench(binary))
        run_dir = epoch_cmd[-1]
        shutil.rmtree(run_dir, ignore_errors=True)
        _, _, out = timed(epoch_cmd)
        epochs.append(history(run_dir)[0]["seconds"])
        # "782/782 - ..." in the epoch's line: the training steps. The
        # validation set (the test half, 25,000 reviews like the training
        # half) takes as many batches at the default validation batch size.
        steps = int(re.search(r"(\d+)/\1 - ", out).group(1))
    train_ms = min(b["train_ms"] for b in benches)
    table_ms = min(b["table_ms"] for b in benches)
    kernel_s = steps * (train_ms + table_ms) / 1000
    return {"steps": steps, "kernel_benches": benches, "epoch_seconds": epochs,
            "kernel_s": kernel_s, "epoch_s": min(epochs), "ratio": min(epochs) / kernel_s,
            "best_share_of_peak": max(b["train_share_of_peak"] for b in benches)}


def history(run_dir):
    import csv
    with open(run_dir / "history.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", required=True, help="aclImdb .tar.gz with the labelled reviews")
    ap.add_argument("--reference", default=str(ROOT.parent / "shared" / "bench" / "torch_reference.py"))
    ap.add_argument("--work", default=str(ROOT / "benches" / "out"), help="scratch folder")
    ap.add_argument("--out", default=None, help="JSON file [default: <work>/compare.json]")
    ap.add_argument("--skip-reference", action="store_true", help="measure gru-imdb only")
    ap.add_argument("--skip-full-run", action="store_true", help="skip the 5-epoch run")
    ap.add_argument("--kernel-bench", default=None,
                    help="the gru_cpu bench executable, for the epoch against the kernel's time")
    ap.add_argument("--ratio-rounds", type=int, default=3,
                    help="kernel benches and epochs taken in turns [default: 3]")
    args = ap.parse_args()

    if not BIN.exists():
        sys.exit(f"{BIN} is missing: run `make build` first")
    if args.kernel_bench and not os.access(args.kernel_bench, os.X_OK):
        sys.exit(f"--kernel-bench {args.kernel_bench} is not an executable: "
                 "`cargo bench --bench gru_cpu --no-run` names it (then `make build`)")
    archive = Path(args.archive).resolve()
    digest = sha256(archive)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data_dir = work / "data"
    data = ["--data-url", archive, "--data-sha256", digest, "--data-dir", data_dir]
    figures = {"machine": os.uname().nodename, "cpus": os.cpu_count(), "archive_sha256": digest}

    # The whole 5-epoch run first, from an archive that is not yet prepared.
    if not args.skip_full_run:
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        shutil.copy(archive, data_dir / archive.name)  # "already downloaded"
        full_run = work / "full-run"
        shutil.rmtree(full_run, ignore_errors=True)
        wall, rss, out = timed([BIN, "--epochs", "5", "--seed", "1", "--verbose", "2",
                                "--run-dir", full_run] + data)
        rows = history(full_run)
        test_acc = float(re.search(r"Test accuracy: ([0-9.]+)", out).group(1))
        figures["full_run"] = {"wall_s": wall, "peak_rss_mib": rss, "test_accuracy": test_acc,
                               "epoch_seconds": [r["seconds"] for r in rows], "history": rows}

    # One epoch of each GRU path.
    ours = {}
    for name, extra in [("keras_exact", []), ("recurrent_dropout_0", ["--recurrent-dropout", "0"])]:
        run_dir = work / f"ours-{name}"
        shutil.rmtree(run_dir, ignore_errors=True)
        wall, rss, _ = timed([BIN, "--epochs", "1", "--seed", "1", "--verbose", "2",
                              "--run-dir", run_dir] + data + extra)
        row = history(run_dir)[0]
        ours[name] = {"epoch_s": row["seconds"], "val_accuracy": row["val_accuracy"],
                      "process_wall_s": wall, "peak_rss_mib": rss}
    figures["ours"] = ours

    if args.kernel_bench:
        epoch_cmd = [BIN, "--epochs", "1", "--seed", "1", "--verbose", "2"] + data
        epoch_cmd += ["--run-dir", work / "ours-kernel-ratio"]
        figures["kernel_ratio"] = kernel_ratio(args.kernel_bench, args.ratio_rounds, epoch_cmd)

    # Evaluation throughput of the trained default model.
    tp_json = work / "ours-throughput.json"
    run([BIN, "evaluate", "--run-dir", work / "ours-keras_exact", "--batch-size", "32,1024",
         "--repeats", "3", "--json", tp_json] + data, stdout=subprocess.DEVNULL)
    figures["ours_throughput"] = {str(f["batch_size"]): f["reviews_per_second"]
                                  for f in json.loads(tp_json.read_text())}

    if not args.skip_reference:
        python = str(VENV_PYTHON)
        if subprocess.run([python, "-c", "import numpy"], capture_output=True).returncode != 0:
            run([python, "-m", "pip", "install", "--quiet", "numpy"])
        npy = work / "npy"
        run([BIN, "data", "--quiet", "--export", npy] + data, stdout=subprocess.DEVNULL)
        reference = {}
        for variant in ["fused", "keras-exact"]:
            out = work / f"torch-{variant}.json"
            run([python, args.reference, "--data", npy, "--variant", variant, "--epochs", "1",
                 "--out", out, "--save", work / f"torch-{variant}.pt"], stdout=subprocess.DEVNULL)
            epoch = json.loads(out.read_text())["epochs"][0]
            reference[variant] = {"epoch_s": epoch["wall_s"], "val_accuracy": epoch["val_accuracy"]}
        out = work / "torch-throughput.json"
        run([python, args.reference, "--data", npy, "--variant", "fused", "--throughput",
             "--load", work / "torch-fused.pt", "--out", out], stdout=subprocess.DEVNULL)
        tp = json.loads(out.read_text())["throughput"]
        reference["throughput"] = {bs: tp[bs]["reviews_per_s_median"] for bs in tp}
        figures["pytorch"] = reference

    rows = [
        ("epoch, default (Keras-exact), s", ours["keras_exact"]["epoch_s"],
         figures.get("pytorch", {}).get("fused", {}).get("epoch_s"), "<= 9 s and <= 0.35x fused"),
        ("epoch, --recurrent-dropout 0, s", ours["recurrent_dropout_0"]["epoch_s"],
         figures.get("pytorch", {}).get("fused", {}).get("epoch_s"), "<= 0.3x fused"),
        ("epoch, default vs torch keras-exact", ours["keras_exact"]["epoch_s"],
         figures.get("pytorch", {}).get("keras-exact", {}).get("epoch_s"), "(for reference)"),
        ("eval reviews/s, batch 1024", figures["ours_throughput"].get("1024"),
         figures.get("pytorch", {}).get("throughput", {}).get("1024"), ">= 16,000"),
        ("eval reviews/s, batch 32", figures["ours_throughput"].get("32"),
         figures.get("pytorch", {}).get("throughput", {}).get("32"), ">= 10,000 (2x PyTorch)"),
    ]
    print()
    print(f"{'figure':<34} {'gru-imdb':>10} {'PyTorch':>10} {'ratio':>7}  target")
    for name, mine, theirs, target in rows:
        ratio = f"{mine / theirs:.2f}x" if mine and theirs else "-"
        theirs_s = f"{theirs:10.1f}" if theirs else f"{'-':>10}"
        print(f"{name:<34} {mine:10.1f} {theirs_s} {ratio:>7}  {target}")
    if "full_run" in figures:
        fr = figures["full_run"]
        print(f"{'whole --epochs 5 run, s':<34} {fr['wall_s']:10.1f} {'':>10} {'':>7}  < 50 s")
        print(f"{'peak memory of that run, MiB':<34} {fr['peak_rss_mib']:10.0f} {'':>10} {'':>7}  < 500 MiB")
        print(f"{'test accuracy after 5 epochs':<34} {fr['test_accuracy']:10.4f} {'':>10} {'':>7}  0.83 to 0.86")
    if "kernel_ratio" in figures:
        kr = figures["kernel_ratio"]
        print(f"{'epoch / kernel time for its work':<34} {kr['ratio']:9.2f}x {'':>10} {'':>7}  <= 1.2x"
              f"  ({kr['epoch_s']:.3f} s / {kr['kernel_s']:.3f} s)")
        print(f"{'kernel fwd+bwd B=32, % of FMA peak':<34} {kr['best_share_of_peak']:10d} {'':>10} {'':>7}  >= 80")
    out = Path(args.out) if args.out else work / "compare.json"
    out.write_text(json.dumps(figures, indent=1))
    print(f"\nfigures written to {out}")


if __name__ == "__main__":
    main()
