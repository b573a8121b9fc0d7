# gatehouse — build, install, run and test.
#   make            build for Lua 5.4 into dist/prosody-plugins/
#   make LUA=5.1    build for another Lua (5.1, 5.2, 5.3, 5.4, luajit)
#   make run        a local Prosody on 127.0.0.1 with gatehouse enabled and a demo token
#   make test       every test: Rust core, Lua-level on every Lua, end-to-end against
#                   Prosody 0.12 (the system's) and Prosody 13 (a cached Debian 13 root)
#   make test-prosody13   the end-to-end suite against Prosody 13 only
#   make test-differential  upstream's modules vs gatehouse's, side by side, on Prosody 0.12 and 13
#   make test-lua-all     build for 5.1 5.2 5.3 luajit and run the Lua-level tests in each
#   make deb        dist/gatehouse_<version>_<arch>.deb (plugins into $(PLUGIN_DIR))
#   make test-deb   install that .deb and run an end-to-end test against the installed files
#   make bench      benchmarks (native calls from Lua, connect+auth+join, remote calls under load)
#   make fuzz       every fuzz target for FUZZ_SECONDS (default 60) each; fails on any crash
#   make install    copy dist/prosody-plugins/ into $(DESTDIR)$(PLUGIN_DIR)

LUA ?= 5.4
PLUGIN_DIR ?= /usr/share/jitsi-meet/prosody-plugins
DESTDIR ?=
CARGO ?= cargo
# Where `make build` leaves the installable tree (and the e2e tests look for it).
DIST ?= dist/prosody-plugins
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
export GATEHOUSE_DIST := $(abspath $(DIST))

LUA_FEATURE_5.1 := lua51
LUA_FEATURE_5.2 := lua52
LUA_FEATURE_5.3 := lua53
LUA_FEATURE_5.4 := lua54
LUA_FEATURE_luajit := luajit
LUA_FEATURE := $(LUA_FEATURE_$(LUA))
ifeq ($(LUA_FEATURE),)
$(error LUA must be one of 5.1 5.2 5.3 5.4 luajit, not '$(LUA)')
endif
LUA_BIN_5.1 := lua5.1
LUA_BIN_5.2 := lua5.2
LUA_BIN_5.3 := lua5.3
LUA_BIN_5.4 := lua5.4
LUA_BIN_luajit := luajit
LUA_BIN := $(LUA_BIN_$(LUA))

# command:Debian package pairs the run and test targets need; installed only when missing.
NEEDS := prosody:prosody lua5.4:lua5.4 lua5.1:lua5.1 lua5.2:lua5.2 lua5.3:lua5.3 luajit:luajit \
	node:nodejs npm:npm debootstrap:debootstrap
# Lua libraries of the upstream modules the differential tests run (jitsi-meet-prosody's Depends).
UPSTREAM_LUA_LIBS := lua-basexx lua-inspect lua-cjson lua-luaossl lua-sec

# The other Lua builds `make test` checks (5.4 is the main build). Each gets its own tree under
# target/, so the 5.4 tree in $(DIST) that the other steps use is never clobbered.
LUA_VARIANTS := 5.1 5.2 5.3 luajit
# Extra `cargo build` flags; the variants pass --lib (the standalone issuer needs no Lua).
CARGO_BUILD_FLAGS ?=
VARIANT_DIST = $(TARGET_DIR)/dist-lua$(1)

# Prosody 13 (Debian 13's, on Lua 5.4) runs chrooted in a Debian 13 root made once and kept
# outside the tree (packaging/prosody13-root.sh); tests/e2e/lib/prosody.js reads PROSODY_ROOT.
PROSODY13_ROOT ?= $(HOME)/.cache/gatehouse/trixie
# One e2e file run against the installed .deb (`make test-deb`).
DEB_E2E_TEST ?= token_auth.test.js

# Synapse (from PyPI) for the Matrix homeserver-mode tests, installed once into a venv outside
# the tree; the e2e tests find it through SYNAPSE_PYTHON.
SYNAPSE_VENV ?= $(HOME)/.cache/gatehouse/synapse-venv
export SYNAPSE_PYTHON := $(SYNAPSE_VENV)/bin/python

.PHONY: fuzz all build deps synapse install run test test-rust test-lua test-lua-all test-e2e \
	prosody13-root test-prosody13 test-differential deb test-deb bench clean

all: build

build:
	$(CARGO) build --release --locked --features $(LUA_FEATURE) $(CARGO_BUILD_FLAGS)
	rm -rf $(DIST) && mkdir -p $(DIST)
	cp prosody-plugins/mod_*.lua lua/*.lua $(DIST)/
	cp $(TARGET_DIR)/release/libgatehouse.so $(DIST)/gatehouse.so

install:
	test -f $(DIST)/gatehouse.so || { echo "run 'make build' first"; exit 1; }
	install -d $(DESTDIR)$(PLUGIN_DIR)
	install -m 0644 $(DIST)/*.lua $(DESTDIR)$(PLUGIN_DIR)/
	install -m 0755 $(DIST)/gatehouse.so $(DESTDIR)$(PLUGIN_DIR)/

deps:
	@missing=""; for need in $(NEEDS); do \
		command -v $${need%%:*} >/dev/null 2>&1 || missing="$$missing $${need#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@dpkg-query -W $(UPSTREAM_LUA_LIBS) >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(UPSTREAM_LUA_LIBS); }
	@# Debian starts the packaged service on install; ours run on their own ports and configs.
	@if [ -x /etc/init.d/prosody ]; then /etc/init.d/prosody stop >/dev/null 2>&1 || true; fi
	cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error

synapse:
	@$(SYNAPSE_PYTHON) -c 'import synapse' 2>/dev/null || { \
		echo "installing matrix-synapse into $(SYNAPSE_VENV)"; \
		python3 -m venv $(SYNAPSE_VENV) && \
		$(SYNAPSE_VENV)/bin/pip install --quiet --disable-pip-version-check matrix-synapse; }

run: deps build
	node tests/e2e/demo.js

test: deps synapse build test-rust test-lua test-lua-all test-e2e test-prosody13 test-differential

test-rust:
	$(CARGO) test --locked

test-lua:
	$(LUA_BIN) tests/lua/run.lua $(DIST)

test-lua-all:
	@for v in $(LUA_VARIANTS); do \
		echo "== Lua $$v"; \
		$(MAKE) --no-print-directory build test-lua LUA=$$v DIST=$(call VARIANT_DIST,$$v) \
			CARGO_BUILD_FLAGS=--lib || exit 1; \
	done

test-e2e:
	cd tests/e2e && npm test

prosody13-root:
	sh packaging/prosody13-root.sh $(PROSODY13_ROOT)

test-prosody13: prosody13-root
	cd tests/e2e && PROSODY_ROOT=$(PROSODY13_ROOT) npm test

# The same scenarios against upstream's modules (../shared/upstream) and gatehouse's.
test-differential: prosody13-root
	cd tests/e2e && npm run test:differential
	cd tests/e2e && PROSODY_ROOT=$(PROSODY13_ROOT) npm run test:differential

deb:
	test -f $(DIST)/gatehouse.so || $(MAKE) --no-print-directory build
	sh packaging/build-deb.sh $(DIST) $(patsubst %/,%,$(dir $(DIST)))

# Installs the package (apt resolves Depends), then runs one e2e file with the plugins taken
# from the installed tree only.
test-deb: deb
	apt-get install -y -qq --reinstall $(abspath $(patsubst %/,%,$(dir $(DIST))))/gatehouse_*.deb
	@if [ -x /etc/init.d/prosody ]; then /etc/init.d/prosody stop >/dev/null 2>&1 || true; fi
	cd tests/e2e && GATEHOUSE_DIST=$(PLUGIN_DIR) node --test $(DEB_E2E_TEST)

bench: deps build
	$(LUA_BIN) tests/bench/native.lua $(DIST)
	node tests/bench/connect.mjs
	node tests/bench/remote.mjs

clean:
	rm -rf dist target tests/e2e/.run

# Fuzzing with cargo fuzz (libFuzzer). It passes nightly-only compiler flags, which the stable
# toolchain accepts with RUSTC_BOOTSTRAP=1. New inputs go to a scratch corpus under
# tests/fuzz/target; the committed corpus (tests/fuzz/corpus) is only read.
FUZZ_SECONDS ?= 60
FUZZ_SANITIZER ?= address
FUZZ_TARGETS := jwt keys room matrix issuer wallet

fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p tests/fuzz/target/corpus/$$t; \
		echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir tests/fuzz -O -s $(FUZZ_SANITIZER) $$t \
			tests/fuzz/target/corpus/$$t tests/fuzz/corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -max_len=4096 > tests/fuzz/target/$$t.log 2>&1; \
		rc=$$?; grep -E "^Done [0-9]+ runs" tests/fuzz/target/$$t.log; \
		[ $$rc -eq 0 ] || { tail -40 tests/fuzz/target/$$t.log; echo "fuzz: $$t FAILED"; exit 1; }; \
	done
