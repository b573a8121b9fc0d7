# gatehouse — build, install, run and test.
#   make            build for Lua 5.4 into dist/prosody-plugins/
#   make LUA=5.1    build for another Lua (5.1, 5.2, 5.3, 5.4, luajit)
#   make run        a local Prosody on 127.0.0.1 with gatehouse enabled and a demo token
#   make test       every test: Rust core, Lua-level, end-to-end against a real Prosody
#   make bench      benchmarks (native calls from Lua, connect+auth+join against Prosody)
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
NEEDS := prosody:prosody lua5.4:lua5.4 node:nodejs npm:npm

# Synapse (from PyPI) for the Matrix homeserver-mode tests, installed once into a venv outside
# the tree; the e2e tests find it through SYNAPSE_PYTHON.
SYNAPSE_VENV ?= $(HOME)/.cache/gatehouse/synapse-venv
export SYNAPSE_PYTHON := $(SYNAPSE_VENV)/bin/python

.PHONY: all build deps synapse install run test test-rust test-lua test-e2e bench clean

all: build

build:
	$(CARGO) build --release --locked --features $(LUA_FEATURE)
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

test: deps synapse build test-rust test-lua test-e2e

test-rust:
	$(CARGO) test --locked

test-lua:
	$(LUA_BIN) tests/lua/run.lua $(DIST)

test-e2e:
	cd tests/e2e && npm test

bench: deps build
	$(LUA_BIN) tests/bench/native.lua $(DIST)
	node tests/bench/connect.mjs

clean:
	rm -rf dist target tests/e2e/.run
