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

test: setup
	cargo test --release

lint: setup
	cargo fmt --all -- --check
	cargo clippy --release --all-targets -- -D warnings
