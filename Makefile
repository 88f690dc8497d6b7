# The quick start. Each target first makes sure libtorch is installed
# (scripts/setup-libtorch: idempotent, a no-op once done).
# Extra program flags go in ARGS: make train ARGS="--epochs 5 --seed 1".
.PHONY: setup build train test bench lint

setup:
	@scripts/setup-libtorch

build: setup
	cargo build --release

train: setup
	cargo run --release -- $(ARGS)

# fault-injection: tests/fault_injection.rs makes each file-system change
# fail or abort in turn (src/disk.rs); release builds leave it out.
# tests/export.rs loads exports with onnx, onnxruntime, tract and Keras
# (scripts/setup-export-checks puts them in .venv).
test: setup
	@scripts/setup-export-checks
	cargo test --release --features fault-injection

lint: setup
	cargo fmt --all -- --check
	cargo clippy --release --all-targets --features fault-injection -- -D warnings
