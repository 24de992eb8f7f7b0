# pytest-pktgen: the two quick-start commands and their prerequisites.
#   make sweep   the main job: the packet-size sweep over a crossover pair in the VM lab
#   make test    the whole test suite: unit tests on the host, integration tests in the VM lab
# Both install what they need (Debian/Ubuntu packages, a venv with the project) idempotently.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
# qemu and a stock kernel with pktgen.ko for the VM lab; busybox for virtme-ng's initramfs;
# headers and a compiler for kmod/; python3-venv for the venv.
APT_PACKAGES := qemu-system-x86 linux-image-amd64 linux-headers-amd64 busybox-static \
	iproute2 kmod nftables make gcc python3-venv python3-pip \
	linux-source-6.1 bc flex bison libelf-dev libssl-dev xz-utils patch
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VM_ARGS ?=

.PHONY: deps venv kmod patched-kernel patched test unit integration sweep lint capture clean

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

patched: patched-kernel
	$(PYTEST) --pktgen-vm --pktgen-vm-kernel $(PATCHED_TREE) --pktgen-vm-nics 0 tests/patched

unit: venv
	$(PYTEST) tests/unit

integration: deps venv kmod
	$(PYTEST) --pktgen-vm $(VM_ARGS) tests/integration

test: deps venv kmod
	$(VENV)/bin/ruff check pytest_pktgen tests examples
	$(PYTEST) tests/unit tests/host
	$(PYTEST) --pktgen-vm $(VM_ARGS) tests/integration
	scripts/build-patched-kernel.sh $(PATCHED_TREE)
	$(PYTEST) --pktgen-vm --pktgen-vm-kernel $(PATCHED_TREE) --pktgen-vm-nics 0 tests/patched

sweep: deps venv
	$(PYTEST) --pktgen-vm $(VM_ARGS) examples/ -s

lint: venv
	$(VENV)/bin/ruff check pytest_pktgen tests examples

# Re-capture the real pktgen outputs the parser tests read (tests/data/captured/).
capture: deps venv
	$(PYTEST) --pktgen-vm $(VM_ARGS) tests/data/capture.py -s

clean:
	rm -rf $(VENV) .stamp-* .pytest_cache
	$(MAKE) -C kmod clean
