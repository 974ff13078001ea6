# Platos — the two commands are `make dev` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help

APT_PACKAGES := libprotobuf-c-dev protobuf-c-compiler protobuf-compiler libsqlite3-dev docker-compose
SWIFT ?= swift
# CI and `make test` build tests in debug; benchmarks always build release.
SWIFT_TEST_FLAGS ?=

.PHONY: help deps build dev test proto proto-check compose-secret compose-check leaks bench-codec bench-rpc bench-registry bench-memory bench-threads bench-gateway

help:
	@echo "make dev             install system packages, build (release), run the stack: platos dev"
	@echo "make test            install system packages, run every test"
	@echo "make proto           regenerate protoc-c C code and Swift types from proto/"
	@echo "make proto-check     fail when the committed generated code is stale"
	@echo "make compose-check   docker-compose config, and every Dockerfile COPY source is tracked"
	@echo "make leaks           every unit test under AddressSanitizer/LeakSanitizer"
	@echo "make bench-<area>    codec, rpc, registry, memory, threads, gateway (release; RESULT lines)"

# Installs the Debian packages the build and the tests need, only when one is missing.
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=""; \
		if [ "$$(id -u)" != 0 ]; then \
			command -v sudo >/dev/null || { echo "missing:$$missing; run as root, or install sudo" >&2; exit 1; }; \
			SUDO=sudo; \
		fi; \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	$(SWIFT) build

# Builds (release) and runs `platos dev`: registry, memory, threads and gateway under ./data until
# Ctrl-C. Flags for `platos dev` go in DEV_ARGS, for example `make dev DEV_ARGS=--free-ports`.
DEV_PRODUCTS := platos platos-registry platos-memory platos-threads platos-gateway
dev: deps
	@for product in $(DEV_PRODUCTS); do $(SWIFT) build -c release --product $$product || exit 1; done
	"$$($(SWIFT) build -c release --show-bin-path)/platos" dev $(DEV_ARGS)

# Tests run one at a time: on 2 cores, end-to-end tests (real processes, kill -9 writers) running
# beside deadline tests starve the cooperative pool for seconds, which tells nothing about the
# code. Serially the whole suite takes about 100 s.
test: deps
	$(SWIFT) build --build-tests $(SWIFT_TEST_FLAGS)
	$(SWIFT) test --skip-build --no-parallel $(SWIFT_TEST_FLAGS)

proto: deps
	scripts/generate-proto.sh

# Fails when the committed generated code differs from what proto/ produces.
proto-check: proto
	@git diff --exit-code --stat -- Sources/CPlatosProto Sources/PlatosProto/Generated \
		|| { echo "generated code is stale: run 'make proto' and commit the result"; exit 1; }
	@test -z "$$(git status --porcelain -- Sources/CPlatosProto Sources/PlatosProto/Generated)" \
		|| { echo "make proto created files that are not committed"; exit 1; }

# A random internal secret for docker compose (.env.platos is git-ignored).
compose-secret:
	@test -s .env.platos || { printf 'PLATOS_INTERNAL_SECRET=%s\n' "$$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > .env.platos; chmod 600 .env.platos; echo "wrote .env.platos"; }

# The compose file is valid and every Dockerfile names only files that exist.
compose-check: deps compose-secret
	docker-compose config -q
	scripts/check-dockerfiles.sh

# Every test but the end-to-end ones under AddressSanitizer, whose LeakSanitizer fails the run on any
# leak (a retain cycle included). The end-to-end tests start the plain debug executables. Serially,
# as in `make test`: instrumented and in parallel on 2 cores, timers fired seconds late.
leaks: deps
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan
	ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/lsan.supp $(SWIFT) test --skip-build --sanitize=address --scratch-path .build-asan \
		--no-parallel --skip EndToEndTests

bench-codec: deps
	$(SWIFT) build -c release --product platos-bench-codec
	.build/release/platos-bench-codec

# Platos RPC vs grpc-swift-2 vs a bare SwiftNIO echo, unary 64-byte ping over loopback (release).
bench-rpc: deps
	scripts/bench-rpc.sh

# auth.resolve calls/s and p99 with 64 callers against the real platos-registry (release).
bench-registry: deps
	$(SWIFT) build -c release --product platos-registry
	$(SWIFT) build -c release --product platos-bench-registry
	.build/release/platos-bench-registry

# Recall latency flatness 10k → 1M memories, recalls/s, acknowledged writes/s (release).
bench-memory: deps
	scripts/bench-memory.sh

# messages.post/s, messages.list p99, spawn→claim→complete round trips/s (release).
bench-threads: deps
	scripts/bench-threads.sh

# memory.recall through the gateway vs direct, the p50 it adds, context.load vs its calls (release).
bench-gateway: deps
	scripts/bench-gateway.sh
