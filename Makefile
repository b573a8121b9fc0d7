# gatehouse — build, install, run and test.
#   make            build for Lua 5.4 into dist/prosody-plugins/
#   make LUA=5.1    build for another Lua (5.1, 5.2, 5.3, 5.4, luajit)
#   make run        a local Prosody on 127.0.0.1 with gatehouse enabled and a demo token
#                   (installs only what that needs: prosody, Node.js, npm packages)
#   make test       every test, suites side by side (tests/run-suites.sh, logs in
#                   target/test-logs/): Rust core, Lua-level on every Lua, end-to-end against
#                   Prosody 0.12 (the system's) and Prosody 13 (a cached Debian 13 root), the
#                   differential layer, docker-jitsi-meet's config, the .deb, a fuzzing smoke pass
#   make test-prosody13   the end-to-end suite against Prosody 13 only
#   make test-differential  upstream's modules vs gatehouse's, side by side, on Prosody 0.12 and 13
#   make test-lua-all     build for 5.1 5.2 5.3 luajit and run the Lua-level tests in each
#   make deb        dist/gatehouse_<version>_<arch>.deb (plugins into $(PLUGIN_DIR))
#   make test-deb   install that .deb (here, and in the Debian 13 root) and run an end-to-end
#                   test against the installed files on Prosody 0.12 and 13
#   make test-docker-config  docker-jitsi-meet's config rendered by its own templates, run in
#                   Prosody 13 with jitsi-meet's plugins and gatehouse's
#   make bench      benchmarks (native calls from Lua, connect+auth+join, remote calls under load,
#                   HTTPS key fetches)
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

# What `make run` needs (command:Debian package, installed when the command is missing). Node.js
# may come from elsewhere (the e2e tests need >= 20.10), so only a missing `node` installs it.
RUN_NEEDS := prosody:prosody node:nodejs npm:npm
# What `make test` needs on top: every Lua the Lua-level tests load gatehouse.so into,
# debootstrap for the Debian 13 root, openssl for test CAs and certificates, python3-venv for
# Synapse, dnsmasq (a real DNS server for Matrix server discovery), Go and sprig to build
# docker-jitsi-meet's renderer (tpl); and, as Debian packages
# (checked with dpkg), the Lua libraries of the upstream modules the differential tests run
# (jitsi-meet-prosody's Depends).
TEST_NEEDS := lua5.1:lua5.1 lua5.2:lua5.2 lua5.3:lua5.3 luajit:luajit debootstrap:debootstrap \
	openssl:openssl dnsmasq:dnsmasq-base go:golang-go
TEST_PACKAGES := lua-basexx lua-inspect lua-cjson lua-luaossl lua-sec python3-venv \
	golang-github-masterminds-sprig-dev

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

.PHONY: fuzz fuzz-smoke all build deps deps-run deps-test synapse install run test test-rust \
	test-lua test-lua-all test-e2e prosody13-root test-prosody13 test-differential deb test-deb \
	test-deb-0.12 test-deb-13 tpl test-docker-config bench clean

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

# Installs what is missing, in one apt-get run: $(1) = command:package pairs, $(2) = packages.
define install_missing
	@missing=""; for need in $(1); do \
		command -v $${need%%:*} >/dev/null 2>&1 || missing="$$missing $${need#*:}"; \
	done; \
	for pkg in $(2); do \
		dpkg-query -W -f='$${Status}\n' $$pkg 2>/dev/null | grep -q ' installed$$' || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
endef

deps-run:
	$(call install_missing,$(RUN_NEEDS),)
	@# Debian starts the packaged service on install; ours run on their own ports and configs.
	@if [ -x /etc/init.d/prosody ]; then /etc/init.d/prosody stop >/dev/null 2>&1 || true; fi
	cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error

deps-test: deps-run
	$(call install_missing,$(TEST_NEEDS),$(TEST_PACKAGES))

deps: deps-test

synapse:
	@$(SYNAPSE_PYTHON) -c 'import synapse' 2>/dev/null || { \
		echo "installing matrix-synapse into $(SYNAPSE_VENV)"; \
		python3 -m venv $(SYNAPSE_VENV) && \
		$(SYNAPSE_VENV)/bin/pip install --quiet --disable-pip-version-check matrix-synapse; }

run: deps-run build
	node tests/e2e/demo.js

# The suites `make test` runs side by side once the shared parts are ready (built, installed,
# the Debian 13 root made), in two groups: the second starts when the first is done, so that the
# end-to-end suites, whose tests time logins and pings while something hangs, run on a quiet
# machine. Add yours to the first group unless it times latencies; NICE_SUITES (compiling) run
# at a lower CPU priority.
TEST_SUITES := test-rust test-lua-all fuzz-smoke test-differential test-docker-config test-deb \
	--then test-e2e test-prosody13
NICE_SUITES := test-rust test-lua-all fuzz-smoke

test: deps-test
	$(MAKE) --no-print-directory -j4 synapse prosody13-root build tpl
	NICE_SUITES="$(NICE_SUITES)" bash tests/run-suites.sh $(TEST_SUITES)

test-rust:
	$(CARGO) test --locked

test-lua:
	$(LUA_BIN) tests/lua/run.lua $(DIST)

# Lua 5.4 (the main build), then every other Lua.
test-lua-all: test-lua
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

# Installs the package (apt resolves Depends) here and in the Debian 13 root, then runs one e2e
# file with the plugins taken from the installed tree only, on Prosody 0.12 and on 13.
DEB_FILE = $(abspath $(patsubst %/,%,$(dir $(DIST))))/gatehouse_$(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -1)_$(shell dpkg --print-architecture).deb
test-deb: test-deb-0.12 test-deb-13

test-deb-0.12: deb
	apt-get install -y -qq --reinstall $(DEB_FILE)
	@if [ -x /etc/init.d/prosody ]; then /etc/init.d/prosody stop >/dev/null 2>&1 || true; fi
	cd tests/e2e && GATEHOUSE_DIST=$(PLUGIN_DIR) node --test $(DEB_E2E_TEST)

test-deb-13: deb prosody13-root
	cp $(DEB_FILE) $(PROSODY13_ROOT)/tmp/gatehouse.deb
	chroot $(PROSODY13_ROOT) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall \
		--no-install-recommends /tmp/gatehouse.deb
	rm -f $(PROSODY13_ROOT)/tmp/gatehouse.deb
	cd tests/e2e && PROSODY_ROOT=$(PROSODY13_ROOT) GATEHOUSE_DIST=$(PROSODY13_ROOT)$(PLUGIN_DIR) \
		node --test $(DEB_E2E_TEST)

# jitsi/tpl, the renderer docker-jitsi-meet's images run on their config templates, built from
# ../shared/upstream/tpl with Debian's Go and sprig (tests/e2e/docker/build-tpl.sh).
export TPL_BIN := $(abspath $(TARGET_DIR)/tpl/tpl)
tpl: $(TPL_BIN)
$(TPL_BIN): tests/e2e/docker/build-tpl.sh tests/e2e/docker/sprout/sprout.go
	sh tests/e2e/docker/build-tpl.sh $(TPL_BIN)

test-docker-config: prosody13-root tpl
	test -f $(DIST)/gatehouse.so || $(MAKE) --no-print-directory build
	cd tests/e2e && PROSODY_ROOT=$(PROSODY13_ROOT) node --test docker/

bench: deps-run build
	$(LUA_BIN) tests/bench/native.lua $(DIST)
	node tests/bench/connect.mjs
	node tests/bench/remote.mjs
	node tests/bench/expiry.mjs
	node tests/bench/https.mjs

clean:
	rm -rf dist target tests/e2e/.run

# Fuzzing with cargo fuzz (libFuzzer). It passes nightly-only compiler flags, which the stable
# toolchain accepts with RUSTC_BOOTSTRAP=1. New inputs go to a scratch corpus under
# tests/fuzz/target; the committed corpus (tests/fuzz/corpus) is only read.
FUZZ_SECONDS ?= 60
FUZZ_SANITIZER ?= address
FUZZ_TARGETS := jwt keys room matrix issuer wallet dns

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

# What `make test` runs of it: every target for FUZZ_SMOKE_SECONDS, no sanitizer. Built with
# plain cargo and the instrumentation flags `cargo fuzz build -O -s none` passes (so a fresh
# machine need not build cargo-fuzz itself, minutes of CI), into its own target dir.
FUZZ_SMOKE_SECONDS ?= 10
FUZZ_TRIPLE := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
FUZZ_SMOKE_DIR := tests/fuzz/target/smoke
FUZZ_SMOKE_RUSTFLAGS := -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
	-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
	-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing \
	-Cllvm-args=-simplifycfg-branch-fold-threshold=0 -Cllvm-args=-sanitizer-coverage-stack-depth \
	-Cdebug-assertions

fuzz-smoke:
	RUSTFLAGS="$(FUZZ_SMOKE_RUSTFLAGS)" $(CARGO) build --locked --release --bins \
		--manifest-path tests/fuzz/Cargo.toml --target $(FUZZ_TRIPLE) --target-dir $(FUZZ_SMOKE_DIR)
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p tests/fuzz/target/corpus/$$t; \
		echo "fuzz: $$t for $(FUZZ_SMOKE_SECONDS) s"; \
		$(FUZZ_SMOKE_DIR)/$(FUZZ_TRIPLE)/release/$$t tests/fuzz/target/corpus/$$t tests/fuzz/corpus/$$t \
			-max_total_time=$(FUZZ_SMOKE_SECONDS) -max_len=4096 > tests/fuzz/target/$$t.log 2>&1; \
		rc=$$?; grep -E "^Done [0-9]+ runs" tests/fuzz/target/$$t.log; \
		[ $$rc -eq 0 ] || { tail -40 tests/fuzz/target/$$t.log; echo "fuzz: $$t FAILED"; exit 1; }; \
	done
