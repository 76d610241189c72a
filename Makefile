# The two set-up commands of the README are `make demo` and `make test`; both work on a fresh
# Debian machine (they install what they need through scripts/setup-host).
SHELL := /bin/bash
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
PLUGIN_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' plugin.toml | head -n1)
BINARIES := $(basename $(notdir $(wildcard src/bin/*.rs)))
TARBALL := dist/image-$(VERSION).tar.gz
# Everything the installed plugin folder holds besides bin/.
PLUGIN_FILES := plugin.toml commands install update subcommands README.md LICENSE \
	$(filter-out install update,$(shell find . -maxdepth 1 -type l -printf '%f\n'))
BATS ?= bats
BATS_FLAGS ?= --print-output-on-failure

.PHONY: setup build package test unit lint bats demo bench clean

setup:
	scripts/setup-host

build:
	cargo build --release --locked
	mkdir -p bin
	for binary in $(BINARIES); do cp -f target/release/$$binary bin/; done

package: build
	@[[ "$(VERSION)" == "$(PLUGIN_VERSION)" ]] || { echo "Cargo.toml version $(VERSION) differs from plugin.toml $(PLUGIN_VERSION)" >&2; exit 1; }
	rm -rf dist/stage && mkdir -p dist/stage/image
	cp -a $(PLUGIN_FILES) bin dist/stage/image/
	tar -C dist/stage -czf $(TARBALL) image
	rm -rf dist/stage
	@echo "$(TARBALL)"

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

bench: package
	bench/load-archive $(abspath $(TARBALL))

clean:
	rm -rf target bin dist .build
