# The two set-up commands of the README are `make demo` and `make test`; both work on a fresh
# Debian machine (they install what they need through scripts/setup-host).
SHELL := /bin/bash
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
TARBALL := dist/image-$(VERSION).tar.gz
# The engines the bats suite runs on (scripts/engines): 20 (the system's 20.10, classic store),
# 26 (26.1, classic store), 26-c8d (26.1, containerd image store). `make test ENGINES=20`
# for a quick run.
ENGINES ?= 20,26,26-c8d
export ENGINES

.PHONY: setup build package test unit lint bats demo bench bench-slim bench-delta soak fuzz clean

setup:
	scripts/setup-host

# Static binaries for this machine's architecture (scripts/build-release): the tarball runs
# on any Linux of it.
build:
	scripts/build-release "$${CARGO_TARGET_DIR:-target}"

package: build
	scripts/package $(VERSION)

unit:
	cargo test --locked

lint:
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings
	scripts/check-imports

bats: package
	scripts/test-engines $(abspath $(TARBALL))

test: setup
	$(MAKE) unit lint bats

demo: setup
	$(MAKE) package
	scripts/demo $(abspath $(TARBALL))

# The load benchmark runs on each engine of ENGINES, against that engine's own load.
bench: setup package
	bench/deploy-history $(abspath $(TARBALL))
	scripts/engines start $(ENGINES)
	for engine in $${ENGINES//,/ }; do \
		bench/load-archive --engine "$$engine" $(abspath $(TARBALL)) || exit 1; \
	done
	$(MAKE) bench-slim bench-delta

# A 10 MiB redeploy of a 1 GiB image over ssh, on each engine of ENGINES as the host:
# dokku-image push against docker image save | ssh … image:load (bench/slim-push),
# image:layers on a host with 200 images (bench/image-layers), and the floor under any push
# over Dokku's ssh (bench/ssh-floor).
bench-slim: package
	scripts/engines start $(ENGINES)
	for engine in $${ENGINES//,/ }; do \
		bench/image-layers --engine "$$engine" $(abspath $(TARBALL)) || exit 1; \
		bench/slim-push --engine "$$engine" $(abspath $(TARBALL)) || exit 1; \
		bench/ssh-floor --engine "$$engine" $(abspath $(TARBALL)) || exit 1; \
	done

# Layer recipes against whole layers (bench/delta-push): a fresh-checkout rebuild, a
# node_modules reinstall and a patched binary, pushed to each engine of ENGINES as the host
# (from engine 20 to 26, from 26 to the others), to 26-c8d from 20 too (a legacy-layout
# client) and to 26 from 26-c8d (a client that pushes through its engine).
bench-delta: package
	scripts/engines start $(ENGINES)
	for engine in $${ENGINES//,/ }; do \
		bench/delta-push --engine "$$engine" $(abspath $(TARBALL)) || exit 1; \
	done
	if [[ ",$(ENGINES)," == *,26-c8d,* && ",$(ENGINES)," == *,20,* ]]; then \
		bench/delta-push --engine 26-c8d --client-engine 20 $(abspath $(TARBALL)) || exit 1; \
	fi
	if [[ ",$(ENGINES)," == *,26-c8d,* && ",$(ENGINES)," == *,26,* ]]; then \
		bench/delta-push --engine 26 --client-engine 26-c8d $(abspath $(TARBALL)); \
	fi

# 200 sequential deploys on a sandbox host (SOAK_DEPLOYS to change): fails if deploys slow
# down or anything but the app repo grows.
soak: package
	tests/soak/run $(abspath $(TARBALL))

# Each cargo-fuzz target of fuzz/ for FUZZ_SECONDS (needs `cargo install cargo-fuzz --locked`
# and a nightly toolchain). Without a sanitizer: the crate forbids unsafe code, and ASan would
# make the runs 40 times slower. Findings land in fuzz/artifacts/TARGET/.
FUZZ_SECONDS ?= 60
fuzz:
	@command -v cargo-fuzz >/dev/null || { echo " !     make fuzz needs cargo-fuzz: cargo install cargo-fuzz --locked" >&2; exit 1; }
	@set -o pipefail; log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	for target in archive archive_tar reference args delta_split delta_recipe; do \
		echo "=====> fuzz $$target for $(FUZZ_SECONDS)s"; \
		cargo +nightly fuzz run --sanitizer none $$target -- -max_total_time=$(FUZZ_SECONDS) \
			-rss_limit_mb=512 -timeout=10 -print_final_stats=1 >"$$log" 2>&1 || { \
			tail -n 40 "$$log"; echo " !     fuzz target $$target failed: see fuzz/artifacts/$$target/" >&2; exit 1; }; \
		grep -E '^#[0-9]+[[:space:]]+DONE' "$$log" | tail -n 1; \
		sed -n 's/^stat::number_of_executed_units: */       executions: /p' "$$log"; \
	done

clean:
	rm -rf target bin dist .build
