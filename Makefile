# spawnctl — build, run, test.
#   make          build dist/spawnctl
#   make run      build, then start an ephemeral container of this host's own root
#   make test     build, then run unit, integration and e2e tests (as root)
#
# Bun comes from the npm registry (the `bun` package, a devDependency) into
# node_modules/; no download scripts.

BUN   := node_modules/.bin/bun
SRCS  := $(shell find src shim -type f -not -name nsh_abi.h 2>/dev/null) build.ts package.json

.PHONY: all run deps test test-unit test-integration test-e2e bench clean

all: dist/spawnctl

$(BUN): package.json
	npm install --no-audit --no-fund --loglevel=error
	@touch $(BUN)

dist/spawnctl: $(BUN) $(SRCS)
	$(BUN) build.ts

# An ephemeral container of the host's own root: nothing to download. On a
# terminal you get a shell (leave with exit, or ^] three times); otherwise a
# short demonstration command runs.
DEMO := /bin/sh -c 'echo "container $$(hostname) sees $$(ls /proc | grep -c "^[0-9]") processes, it is PID $$$$"; grep PRETTY_NAME /etc/os-release; grep -E "^(CapBnd|Seccomp):" /proc/self/status; ls /run/host'

run: dist/spawnctl
	@if [ -t 0 ]; then \
		dist/spawnctl run -x -D / --settings=no $(ARGS); \
	else \
		dist/spawnctl run -x -D / --settings=no --pipe $(if $(ARGS),$(ARGS),$(DEMO)); \
	fi

# the Debian packages the tests need (.ci/packages), installed when missing
deps:
	@sh .ci/deps

test: deps dist/spawnctl
	$(BUN) tests/run.ts

test-unit: dist/spawnctl
	$(BUN) tests/run.ts unit

test-integration: deps dist/spawnctl
	$(BUN) tests/run.ts integration

test-e2e: deps dist/spawnctl
	$(BUN) tests/run.ts e2e

bench: dist/spawnctl
	$(BUN) bench/run.ts

clean:
	rm -rf dist build shim/nsh_abi.h
