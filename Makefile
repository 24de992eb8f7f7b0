# pytest-pktgen: the two quick-start commands and their prerequisites.
#   make sweep   the main job: the packet-size sweep over a crossover pair in the VM lab
#   make test    the whole test suite: unit tests on the host, integration tests in the VM lab
# Both install what they need (Debian/Ubuntu packages, a venv with the project) idempotently.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
# qemu and a stock kernel with pktgen.ko for the VM lab; busybox for virtme-ng's initramfs;
# headers and a compiler for kmod/; python3-venv for the venv; ssh-keygen and libwrap0 for the
# SSH lab hosts' sshd (unpacked from openssh-server below, never installed as a service).
APT_PACKAGES := qemu-system-x86 linux-image-amd64 linux-headers-amd64 busybox-static \
	iproute2 kmod nftables make gcc python3-venv python3-pip \
	linux-source-6.1 bc flex bison libelf-dev libssl-dev xz-utils patch \
	openssh-client libwrap0
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VM_ARGS ?=

.PHONY: deps sshd venv kmod patched-kernel patched test unit integration examples soak sweep bench \
	bench-regression \
	lint capture clean

# The soak test's size in `make test`: 8 runs (2 interrupted) fit CI's time budget on a fresh
# machine; `make soak` runs the full 200 (a child pytest session takes ~10 s under TCG).
CI_SOAK_RUNS ?= 8
# The examples in `make test` (in the integration tests' VM session, one boot for both): short
# rounds and coarse throughput searches (bounds within 5 %), they prove the examples run, not
# what the lab reaches; the size sweep at two sizes, not seven (`make sweep` runs them all).
# That session's own reports go without plots (seconds each under TCG); the plots are tested in
# the nested sessions that check the reports.
EXAMPLE_ARGS ?= --pktgen-count 20000 --pktgen-repeats 2 --pktgen-search-width 0.05 \
	--pktgen-sizes 64,1500

# The paper's ip_input.c patch applied to Debian's linux-source-6.1 and built for the VM lab,
# cached (and rebuilt incrementally) in $(PATCHED_TREE).
PATCHED_TREE ?= $(HOME)/.cache/pytest-pktgen/linux-6.1-pktgen

deps: .stamp-apt
.stamp-apt: Makefile
	@if dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		echo "apt: all packages present"; \
	else \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends \
			$(APT_PACKAGES); \
	fi
	@touch $@

# The VM lab's SSH hosts (network namespaces in the guest) each run an sshd: Debian's
# openssh-server unpacked into the cache, not installed (installing it would start a service
# on this machine and add a user). The machine's own /usr/sbin/sshd is used where it has one.
SSHD_DIR ?= $(HOME)/.cache/pytest-pktgen/openssh
sshd: deps
	@if [ -x /usr/sbin/sshd ] || [ -x $(SSHD_DIR)/usr/sbin/sshd ]; then \
		echo "sshd: present"; \
	else \
		rm -rf $(SSHD_DIR).dl && mkdir -p $(SSHD_DIR).dl && cd $(SSHD_DIR).dl && \
		apt-get download -q openssh-server 2>&1 | grep -v "^W: Download is performed unsandboxed" ; \
		dpkg-deb -x $(SSHD_DIR).dl/openssh-server_*.deb $(SSHD_DIR) && rm -rf $(SSHD_DIR).dl && \
		echo "sshd: unpacked into $(SSHD_DIR)"; \
	fi

venv: .stamp-venv
.stamp-venv: pyproject.toml
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

# The receive counter module, built on the host for the VM lab's kernel (seconds, not minutes).
kmod: deps
	$(MAKE) -C kmod

patched-kernel: deps venv
	scripts/build-patched-kernel.sh $(PATCHED_TREE)

patched: patched-kernel sshd
	$(PYTEST) --pktgen-vm --pktgen-vm-kernel $(PATCHED_TREE) --pktgen-vm-nics 0 tests/patched

unit: venv
	$(PYTEST) tests/unit

integration: deps venv kmod sshd
	PKTGEN_SOAK_RUNS=$(CI_SOAK_RUNS) $(PYTEST) --pktgen-vm $(VM_ARGS) tests/integration

examples: deps venv
	$(PYTEST) --pktgen-vm $(VM_ARGS) examples/ $(EXAMPLE_ARGS)

soak: deps venv kmod
	PKTGEN_SOAK_RUNS=200 $(PYTEST) --pktgen-vm $(VM_ARGS) tests/integration/test_soak.py -s

# The patched kernel builds at the lowest priority while the VM lab's suites run (most of their
# time the VM lab waits on pktgen's pacing, settling counters and child sessions, and a core is
# free): about 6 minutes of compiling hidden on a fresh machine, seconds when it is cached. It
# starts after the unit and host tests: their VM boots race a deadline, and a fresh machine's
# unpacking of the kernel's sources beside them slowed a guest's start past 60 s. Lowest for
# real: the VM's QEMU runs in a session of its own, and with autogroup scheduling (Debian's and
# Ubuntu's default) sessions share the CPU as equals whatever their nice, so the build gets a
# session too, whose autogroup is niced (measured: suites 1.4x as long under a nice-only build).
test: deps venv kmod sshd
	$(VENV)/bin/ruff check pytest_pktgen tests examples bench
	@# any selection of the suite collects, the whole of it as a contributor types it too
	$(PYTEST) --collect-only -q tests examples > /dev/null
	$(PYTEST) tests/unit tests/host --durations=8
	@mkdir -p $(dir $(PATCHED_TREE)); \
	setsid --wait sh -c '{ echo 19 > /proc/self/autogroup; } 2>/dev/null; \
		exec nice -n 19 scripts/build-patched-kernel.sh "$$1"' sh $(PATCHED_TREE) \
		> $(PATCHED_TREE).log 2>&1 & \
	build=$$!; \
	echo "patched kernel: building in the background (nice 19, its own autogroup), log $(PATCHED_TREE).log"; \
	PKTGEN_SOAK_RUNS=$(CI_SOAK_RUNS) $(PYTEST) --pktgen-vm $(VM_ARGS) tests/integration \
		examples/ $(EXAMPLE_ARGS) --pktgen-no-plots --durations=40; \
	suites=$$?; \
	wait $$build; built=$$?; \
	[ $$built -eq 0 ] || { tail -40 $(PATCHED_TREE).log; echo "patched kernel: build failed"; }; \
	[ $$suites -eq 0 ] && [ $$built -eq 0 ]
	$(PYTEST) --pktgen-vm --pktgen-vm-kernel $(PATCHED_TREE) --pktgen-vm-nics 0 tests/patched

# The main job: the paper's packet-size sweep (Table 1) over the lab's crossover pair; prints the
# table and where results.csv/json and sweep.png are (pktgen-results/ unless --pktgen-out).
sweep: deps venv
	$(PYTEST) --pktgen-vm $(VM_ARGS) examples/test_size_sweep.py

# The benchmarks of bench/ in the VM lab (the stock kernel, then the patched one for its receive
# counter) and bench/RESULTS.md from their figures. trafgen (netsniff-ng) is a contender.
BENCH_RUN := $(shell date +%Y%m%dT%H%M%S)
bench: deps venv kmod sshd patched-kernel
	@dpkg -s netsniff-ng >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive $(SUDO) \
		apt-get install -y -q --no-install-recommends netsniff-ng
	PKTGEN_BENCH_RUN=$(BENCH_RUN) PKTGEN_BENCH_T0=$$(date +%s.%N) \
		$(PYTEST) --pktgen-vm $(VM_ARGS) bench/ -s -p no:cacheprovider
	PKTGEN_BENCH_RUN=$(BENCH_RUN) $(PYTEST) --pktgen-vm --pktgen-vm-kernel $(PATCHED_TREE) \
		--pktgen-vm-nics 0 bench/test_3_rx.py -s -p no:cacheprovider
	$(PY) bench/conftest.py $(BENCH_RUN)

# Bench 10 from the host: a kernel with a known added cost (ndelay in dummy_xmit) in a git
# history of 8 commits on the patched kernel's tree; A/B runs and a git bisect run find it.
bench-regression: deps venv patched-kernel
	PKTGEN_BENCH_RUN=$(BENCH_RUN) $(PY) bench/regression.py

lint: venv
	$(VENV)/bin/ruff check pytest_pktgen tests examples bench

# Re-capture the real pktgen outputs the parser tests read (tests/data/captured/); the last,
# a session of the instruction clock, boots a lab of its own (one vCPU, QEMU's icount).
CAPTURE_CLOCK := $(HOME)/.cache/pytest-pktgen/capture-instructions
capture: deps venv
	$(PYTEST) --pktgen-vm $(VM_ARGS) tests/data/capture.py -s
	$(PYTEST) --pktgen-vm --pktgen-vm-clock instructions --pktgen-vm-nics 0 \
		--pktgen-repeats 5 --pktgen-no-plots -p no:cacheprovider \
		--pktgen-out $(CAPTURE_CLOCK) bench/regression_case.py
	cp $(CAPTURE_CLOCK)/results.json tests/data/captured/results-dummy-instructions.json

clean:
	rm -rf $(VENV) .stamp-* .pytest_cache
	$(MAKE) -C kmod clean
