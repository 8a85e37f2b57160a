# spawnctl — build, run, test.
#   make          build dist/spawnctl
#   make run      build, then start an ephemeral container of this host's own root
#   make test     build, then run unit, integration and e2e tests (as root)
#   make install [PREFIX=/usr/local] [DESTDIR=] [LINKS=auto|1|0]
#                 the binary, its links, man pages and shell completions
#   make uninstall  the same variables: removes exactly what install put there
#   make release  dist/release/: the binary for linux-x64, -arm64, -x64-musl, -arm64-musl,
#                 each also .xz, man pages, completions, SHA256SUMS, notes
#                 (.ci/release.ts; RELEASE_DIR= writes elsewhere)
#   make test-release  the release checks: symbol versions, qemu smoke tests
#                 (x64 under -cpu Nehalem, arm64 under qemu-aarch64-static),
#                 two builds byte for byte (slow: builds the release twice)
#
# Bun comes from the npm registry (the `bun` package, a devDependency) into
# node_modules/; no download scripts.

BUN   := node_modules/.bin/bun
SRCS  := $(shell find src shim -type f -not -name nsh_abi.h 2>/dev/null) build.ts package.json

.PHONY: all docs run deps test test-unit test-integration test-e2e test-release release bench clean install uninstall

MANPAGES := spawnctl.1 spawnctl-run.1 spawnctl-machines.1 spawnctl-bootstrap.1
DOCS     := $(addprefix build/man/,$(MANPAGES)) build/completion/spawnctl.bash build/completion/_spawnctl build/completion/spawnctl.fish

all: dist/spawnctl docs

$(BUN): package.json
	npm install --no-audit --no-fund --loglevel=error
	@touch $(BUN)

dist/spawnctl: $(BUN) $(SRCS)
	$(BUN) build.ts

# man pages and completion scripts, made from the option and verb tables
# (src/cli/man.ts, src/cli/completion.ts)
docs: $(DOCS)
$(DOCS): build/docs.stamp ;
build/docs.stamp: $(BUN) $(SRCS)
	$(BUN) build.ts docs

# Installation. The links systemd-nspawn, machinectl, journalctl, systemd-cgls,
# systemd-analyze, systemd-cgtop and systemd-run make spawnctl behave as those
# programs; on a host with systemd they would shadow systemd's own tools, so
# LINKS=auto (the default) installs them only where the host does not run
# systemd; LINKS=1 always, LINKS=0 never. A file of such a name that is not a
# link to spawnctl is never replaced (nor removed by uninstall).
PREFIX  ?= /usr/local
DESTDIR ?=
LINKS   ?= auto
BINDIR   = $(DESTDIR)$(PREFIX)/bin
MANDIR   = $(DESTDIR)$(PREFIX)/share/man/man1
BASHDIR  = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHDIR   = $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHDIR  = $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
TOOL_LINKS := systemd-nspawn machinectl journalctl systemd-cgls systemd-analyze systemd-cgtop systemd-run
# link (in DIR) -> target: the tools, and the completions of the two links that have them
LINK_PAIRS = $(foreach l,$(TOOL_LINKS),$(BINDIR)/$(l):spawnctl) \
	$(BASHDIR)/machinectl:spawnctl $(BASHDIR)/systemd-nspawn:spawnctl \
	$(FISHDIR)/machinectl.fish:spawnctl.fish $(FISHDIR)/systemd-nspawn.fish:spawnctl.fish

install: dist/spawnctl docs
	install -d $(BINDIR) $(MANDIR) $(BASHDIR) $(ZSHDIR) $(FISHDIR)
	install -m 0755 dist/spawnctl $(BINDIR)/spawnctl
	install -m 0644 $(addprefix build/man/,$(MANPAGES)) $(MANDIR)/
	install -m 0644 build/completion/spawnctl.bash $(BASHDIR)/spawnctl
	install -m 0644 build/completion/_spawnctl $(ZSHDIR)/_spawnctl
	install -m 0644 build/completion/spawnctl.fish $(FISHDIR)/spawnctl.fish
	@links='$(LINKS)'; \
	if [ "$$links" = auto ]; then \
		if [ -d /run/systemd/system ]; then links=0; \
			echo "make install: this host runs systemd; the links $(TOOL_LINKS) are not installed (LINKS=1 installs them)"; \
		else links=1; fi; \
	fi; \
	if [ "$$links" = 1 ]; then \
		for p in $(LINK_PAIRS); do \
			l=$${p%:*}; t=$${p##*:}; \
			if [ -e "$$l" ] || [ -L "$$l" ]; then \
				if [ "$$(readlink "$$l")" != "$$t" ]; then echo "make install: $$l exists and is not a link to $$t; left alone" >&2; continue; fi; \
			fi; \
			ln -sfn "$$t" "$$l" && echo "ln -s $$t $$l"; \
		done; \
	fi

uninstall:
	rm -f $(BINDIR)/spawnctl $(addprefix $(MANDIR)/,$(MANPAGES)) $(BASHDIR)/spawnctl $(ZSHDIR)/_spawnctl $(FISHDIR)/spawnctl.fish
	@for p in $(LINK_PAIRS); do \
		l=$${p%:*}; t=$${p##*:}; \
		if [ -L "$$l" ] && [ "$$(readlink "$$l")" = "$$t" ]; then rm -f "$$l" && echo "rm -f $$l"; fi; \
	done

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

# offline from the registries: the Bun runtimes come from the npm registry
# (npm pack, checked against .ci/release.ts's pinned integrities), the
# compilers from .ci/packages
release: deps $(BUN)
	$(BUN) .ci/release.ts

test-release: deps dist/spawnctl
	$(BUN) test --timeout 1800000 tests/release

bench: dist/spawnctl
	$(BUN) bench/run.ts

clean:
	rm -rf dist build shim/nsh_abi.h
