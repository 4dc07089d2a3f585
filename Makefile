# Two commands do everything (each installs what it needs first, as root):
#   make demo   create the local sandbox hosts and provision them with site.yml
#   make test   lint, syntax checks, unit tests, then every Molecule scenario
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export CONTAINERS_CONF := $(CURDIR)/tests/containers.conf
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PY_COLORS := 0
export ANSIBLE_FORCE_COLOR := 0

SANDBOX := inventories/sandbox
PLAYBOOKS := site.yml deploy.yml rollback.yml $(wildcard playbooks/*.yml) $(wildcard awx/*.yml) tests/sandbox/create.yml tests/sandbox/destroy.yml $(wildcard tests/playbooks/*.yml)
# Every scenario, or a subset: make molecule SCENARIOS=users. They run MOLECULE_JOBS at a
# time: most of a scenario's time goes to waiting (containers, systemd, services, SSH),
# so two share the 2 cores well. Those in FIRST start first: the stack scenario takes
# about as long as all the others together, which run one after another beside it.
SCENARIOS ?= $(sort $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml))))
MOLECULE_JOBS ?= 2
FIRST := stack

.PHONY: help bootstrap demo demo-clean bench test lint syntax unit app molecule

help:
	@echo "make demo        create the sandbox hosts (Debian 12 + 13) and run site.yml on them"
	@echo "make demo-clean  remove the sandbox hosts"
	@echo "make test        yamllint, ansible-lint, syntax checks, unit tests, app tests, Molecule scenarios"
	@echo "make app         the sample app's tests and release check (examples/webxample, own venv)"
	@echo "make bench       the benchmarks on their own sandbox hosts (bench/run, docs/benchmarks.md)"

bootstrap:
	@scripts/bootstrap

# The sandbox's secrets are encrypted with the test-only vault password (never use it
# for real ones). The demo releases the sample app to the sandbox's index (once: a
# version is never uploaded twice) and deploys it (a no-op when it already serves).
DEMO_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' examples/webxample/pyproject.toml)
demo: export ANSIBLE_VAULT_IDENTITY_LIST := sandbox@$(CURDIR)/tests/sandbox/vault-password
demo: bootstrap
	ansible-playbook -i $(SANDBOX) tests/sandbox/create.yml
	ansible-playbook -i $(SANDBOX) tests/sandbox/acme-ca.yml
	ansible-playbook -i $(SANDBOX) site.yml
	ansible-playbook -i $(SANDBOX) playbooks/publish.yml -e publish_source=examples/webxample -e publish_skip_existing=true
	ansible-playbook -i $(SANDBOX) deploy.yml -e app_version=$(DEMO_VERSION)
	@scripts/sandbox-info $(SANDBOX)

# The benchmarks create their own sandbox hosts (bench/inventory, test-only secrets).
bench: export ANSIBLE_VAULT_IDENTITY_LIST := sandbox@$(CURDIR)/tests/sandbox/vault-password
bench: bootstrap
	bench/run

demo-clean: bootstrap
	ansible-playbook -i $(SANDBOX) tests/sandbox/destroy.yml

test: bootstrap
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory lint syntax unit app molecule; \
	echo "make test: all steps passed in $$(( $$(date +%s) - start )) s"

lint:
	yamllint --strict .
	ansible-lint

syntax:
	@for p in $(PLAYBOOKS); do ansible-playbook -i $(SANDBOX) --syntax-check "$$p" > /dev/null || exit 1; echo "syntax ok: $$p"; done

unit:
	pytest

# The sample app (examples/webxample): its tests, then its release variants built,
# installed and served by gunicorn. Its venv is .venv-webxample (kept, stamped).
app:
	@start=$$(date +%s); \
	examples/webxample/run-tests; \
	echo "make app: passed in $$(( $$(date +%s) - start )) s"

molecule:
	tests/run-scenarios -j $(MOLECULE_JOBS) $(filter $(FIRST),$(SCENARIOS)) $(filter-out $(FIRST),$(SCENARIOS))
