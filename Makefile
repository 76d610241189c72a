# The two set-up commands of the README are `make demo` and `make test`; both work on a fresh
# Debian machine (they install what they need through scripts/setup-host).
SHELL := /bin/bash
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
TARBALL := dist/image-$(VERSION).tar.gz
BATS ?= bats
BATS_FLAGS ?= --print-output-on-failure

.PHONY: setup build package test unit lint bats demo bench soak clean

setup:
	scripts/setup-host

build:
	cargo build --release --locked
	scripts/install-binaries target

package: build
	scripts/package $(VERSION)

unit:
	cargo test --locked

lint:
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings

bats: package
	IMAGE_PLUGIN_TARBALL=$(abspath $(TARBALL)) $(BATS) $(BATS_FLAGS) tests/bats

test: setup
	$(MAKE) unit lint bats

demo: setup
	$(MAKE) package
	scripts/demo $(abspath $(TARBALL))

bench: setup package
	bench/deploy-history $(abspath $(TARBALL))
	bench/load-archive $(abspath $(TARBALL))

# 200 sequential deploys on a sandbox host (SOAK_DEPLOYS to change): fails if deploys slow
# down or anything but the app repo grows.
soak: package
	tests/soak/run $(abspath $(TARBALL))

clean:
	rm -rf target bin dist .build
