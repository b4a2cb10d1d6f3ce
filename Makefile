# Tether: the two commands a newcomer needs are `make demo` and `make test`.
# Each installs what it needs first (Debian packages, as root or through sudo).

# The compiler holds the dependency direction: a module may import only what Package.swift lets it.
SWIFT_FLAGS ?= --explicit-target-dependency-import-check error
# Debian packages the build and the tests use: system zlib, SQLite (the store, through GRDB, and the
# sqlite3 CLI that backs a running hub up in the fault suite), the OpenSSL CLI (an independent TLS
# client in tests, and the Certs/ scripts), pkg-config to find zlib, iproute2 and iptables (the fault
# suite's members live in network namespaces behind firewalls), BIND and dig (the DNS tests serve the
# hub's zone file with a real named and ask it), tinyproxy and stunnel (the agent's hub reachable only
# through an HTTP proxy, plain, with basic authentication, and behind TLS).
APT_PACKAGES := zlib1g-dev libssl-dev libsqlite3-dev sqlite3 openssl pkg-config iproute2 iptables bind9 dnsutils tinyproxy stunnel4 postgresql-15 liblua5.4-dev

# Debian's kubectl 1.20 (kubernetes-client), for the tests: it conflicts with the kubectl package
# this image carries, so it is downloaded and unpacked into the build folder, never installed.
KUBECTL_LEGACY_DIR := .build-tools/kubectl-1.20
KUBECTL_LEGACY := $(KUBECTL_LEGACY_DIR)/usr/bin/kubectl

# The Python `kubernetes` client from PyPI, for the tests (PythonClientTests), in a virtual
# environment of its own; the version is pinned so a new release cannot change a test's result.
PYTHON_ENV := .build-tools/python
PYTHON_CLIENT := $(PYTHON_ENV)/bin/python
PYTHON_KUBERNETES := kubernetes==31.0.0

# libFuzzer harnesses (Tests/Fuzz): `make fuzz` runs each for FUZZ_SECONDS on a release build;
# the test command runs each for a few seconds on a debug build (the smoke).
FUZZ_FLAGS := --sanitize fuzzer -Xswiftc -sanitize=fuzzer,address -Xswiftc -DTETHER_FUZZ
FUZZ_TARGETS := frame json protobuf patch selectors yaml pem tls cel
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 5

.PHONY: help deps build bench-build bench test test-postgres demo clean fuzz fuzz-smoke fuzz-merge chaos format format-check images asan

# Container images of the agent and the hub (deploy/*.Containerfile), with docker or podman.
IMAGE_TAG ?= 0.1.0
CONTAINER ?= $(shell command -v podman 2>/dev/null || command -v docker 2>/dev/null)

# Formatted by swift-format (bundled with the toolchain) under .swift-format; `make test` checks it.
FORMATTED := Package.swift Sources Plugins Tests Benchmarks/Package.swift Benchmarks/Sources

# The fault suite's long run: `make chaos` runs CHAOS_CYCLES cycles (the test suite runs each fault once).
CHAOS_CYCLES ?= 100

help:
	@echo "make demo   build and run a hub with agents on loopback (Ctrl-C stops it)"
	@echo "make test   build everything and run the whole test suite"
	@echo "make deps   install the Debian packages the build and tests need"
	@echo "make fuzz   run every fuzz harness for FUZZ_SECONDS (default 600) each; fuzz-merge keeps what it found"
	@echo "make bench ARGS='fanout --agents 1000'   run a benchmark on release builds (tether-bench --help lists them)"
	@echo "make format reformat the code as .swift-format says (make test checks it)"
	@echo "make images build the agent and hub images (docker or podman; IMAGE_TAG, default 0.1.0)"
	@echo "make asan   run the first phase of the tests on an AddressSanitizer build; fails on any memory error"
	@echo "make chaos  run the fault suite for CHAOS_CYCLES (default 100) cycles, as root; report in .build/chaos-report.json"

deps:
	@missing=""; \
	for package in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

build: deps
	swift build $(SWIFT_FLAGS)

# The benchmarks are a package of their own (Benchmarks/), so gRPC stays out of the product's
# graph; tether-bench starts the main package's servers from the same configuration's folder.
bench-build: build
	swift build --package-path Benchmarks $(SWIFT_FLAGS)

bench: deps
	swift build -c release $(SWIFT_FLAGS)
	swift build --package-path Benchmarks -c release $(SWIFT_FLAGS)
	Benchmarks/.build/release/tether-bench $(ARGS)

$(KUBECTL_LEGACY):
	mkdir -p $(KUBECTL_LEGACY_DIR)/download
	cd $(KUBECTL_LEGACY_DIR)/download && (apt-get download kubernetes-client || (apt-get update -qq && apt-get download kubernetes-client))
	dpkg-deb -x $(KUBECTL_LEGACY_DIR)/download/kubernetes-client_*.deb $(KUBECTL_LEGACY_DIR)
	$(KUBECTL_LEGACY) version --client

$(PYTHON_CLIENT):
	python3 -m venv $(PYTHON_ENV)
	$(PYTHON_ENV)/bin/pip install --quiet --disable-pip-version-check '$(PYTHON_KUBERNETES)'
	$(PYTHON_CLIENT) -c 'import kubernetes; print("python kubernetes client", kubernetes.__version__)'

# A crash in a test process ends its output with the crashed thread's innermost frames, without
# registers or the list of loaded images: the end of a CI log, often all that is kept of it, then
# says where the crash was.
export SWIFT_BACKTRACE := enable=yes,threads=crashed,registers=none,images=none,limit=14,top=0

# Integration tests launch tether-hub and tether-agent, so every product is built before `swift test`.
# Tests that measure time against a bound (clean stops within 2 s, the fault suite's convergence)
# run after the rest, one at a time: with the whole suite at once on two cores, a debug-built
# process can wait seconds for a CPU.
empty :=
space := $(empty) $(empty)
TIMED_TESTS := StoppingTests|FaultSuiteTests
# Tests on a real PostgreSQL share one server per test process (started on first use, stopped
# when the process ends); each suite runs in a process of its own, bounded, after the rest.
# TetherStoreTests runs the store's contract on SQLite and PostgreSQL (TETHER_TEST_POSTGRES=1).
POSTGRES_TESTS := HubFailoverTests EveryHubTests TetherStoreTests
# At most this many tests at once: unbounded, the 250 tests (each starting hubs, agents and
# members, or running an agent in process) finish no sooner on two cores, but a test's own
# tasks can wait tens of seconds for a thread and miss deadlines that are real (a hub's hello
# timeout). 16 keeps the run at the same ~95 s.
TEST_WIDTH ?= 16
format:
	swift format format --in-place --recursive --parallel $(FORMATTED)

format-check:
	swift format lint --strict --recursive --parallel $(FORMATTED)

test: deps $(KUBECTL_LEGACY) $(PYTHON_CLIENT) format-check
	swift build --build-tests $(SWIFT_FLAGS)
	swift build --package-path Benchmarks $(SWIFT_FLAGS)
	TETHER_KUBECTL_LEGACY=$(abspath $(KUBECTL_LEGACY)) TETHER_PYTHON=$(abspath $(PYTHON_CLIENT)) \
		swift test --skip-build --skip '$(TIMED_TESTS)|$(subst $(space),|,$(POSTGRES_TESTS))' \
		--experimental-maximum-parallelization-width $(TEST_WIDTH)
	for suite in $(POSTGRES_TESTS); do TETHER_TEST_POSTGRES=1 timeout 900 swift test --skip-build --filter $$suite || exit 1; done
	swift test --skip-build --no-parallel --filter '$(TIMED_TESTS)'
	$(MAKE) fuzz-smoke

# Only the store's contract and the shared-store tests on a real PostgreSQL 15 (part of `make test` too).
test-postgres: deps
	swift build --build-tests $(SWIFT_FLAGS)
	TETHER_TEST_POSTGRES=1 timeout 900 swift test --skip-build --filter TetherStoreTests

fuzz-smoke: deps
	swift build -c debug --product tether-fuzz --scratch-path .build-fuzz $(FUZZ_FLAGS)
	Tests/Fuzz/run-fuzzers.sh .build-fuzz/debug/tether-fuzz $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

fuzz: deps
	swift build -c release --product tether-fuzz --scratch-path .build-fuzz $(FUZZ_FLAGS)
	Tests/Fuzz/run-fuzzers.sh .build-fuzz/release/tether-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The first phase of `make test` on an AddressSanitizer build (.build-asan): every memory error in
# the test process or in any hub, agent, member or tetherctl it starts is written to
# .build-asan/reports, and any report fails the target. Under ASan the processes run two to three
# times slower and hold more memory, so tests with time or memory bounds may fail; their failures
# are printed but do not decide the result. About 20 minutes on two cores.
asan: deps $(KUBECTL_LEGACY) $(PYTHON_CLIENT)
	swift build --build-tests --scratch-path .build-asan --sanitize=address $(SWIFT_FLAGS)
	rm -rf .build-asan/reports && mkdir -p .build-asan/reports
	-ASAN_OPTIONS=detect_leaks=0:log_path=$(abspath .build-asan/reports)/asan \
		TETHER_KUBECTL_LEGACY=$(abspath $(KUBECTL_LEGACY)) TETHER_PYTHON=$(abspath $(PYTHON_CLIENT)) \
		swift test --skip-build --scratch-path .build-asan --skip '$(TIMED_TESTS)|$(subst $(space),|,$(POSTGRES_TESTS))' \
		--experimental-maximum-parallelization-width $(TEST_WIDTH)
	@if ls .build-asan/reports/asan.* >/dev/null 2>&1; then \
		echo "AddressSanitizer reported memory errors:"; head -n 40 .build-asan/reports/asan.*; exit 1; \
	else echo "AddressSanitizer: no memory error in the test process or any process it started"; fi

# Keeps the inputs the last `make fuzz` found that reach new code, minimized, in the committed corpus.
fuzz-merge:
	for target in $(FUZZ_TARGETS); do \
		TETHER_FUZZ_TARGET=$$target SWIFT_BACKTRACE=enable=no .build-fuzz/release/tether-fuzz -merge=1 \
			Tests/Fuzz/Corpus/$$target .build-fuzz/corpus/$$target || exit 1; \
	done

images:
	@test -n "$(CONTAINER)" || { echo "make images needs docker or podman"; exit 1; }
	$(CONTAINER) build -f deploy/agent.Containerfile -t tether-agent:$(IMAGE_TAG) .
	$(CONTAINER) build -f deploy/hub.Containerfile -t tether-hub:$(IMAGE_TAG) .

chaos: bench-build
	Benchmarks/.build/debug/tether-bench chaos --cycles $(CHAOS_CYCLES) --report .build/chaos-report.json

demo: build
	.build/debug/tetherctl demo --clusters 3

clean:
	rm -rf .build .build-tools .build-fuzz .demo
