# rendezvous-chat: the commands the README promises.
GO        ?= go
BIN       ?= bin/rendezvous-chat
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
# Arguments for `make run`, e.g. make run ARGS="-rendezvous 'our room'".
ARGS      ?=
STATICCHECK_VERSION ?= v0.8.2

.PHONY: build run test test-short bench bench-bigroom bench-dht demo lint fuzz clean web

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) .

# Start a chat with the default settings: the public DHT and mDNS.
run: build
	@./$(BIN) $(ARGS)

# Every test, with the race detector. The end-to-end tests build and start the
# real binary on loopback; the namespace tests run only as root. This includes
# bench/'s TestSmoke: a quick run of the benchmark suite (`go run ./bench
# -quick`), so that the suite cannot rot; it measures nothing worth keeping.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

# The quick subset, without the race detector and the long end-to-end runs.
test-short:
	$(GO) test -short -count=1 ./...

# The benchmark suite on the real binary, on loopback: ten minutes or so;
# writes the whole of bench/results.md (which the README quotes) from one
# run, whose ID and commit every section names. Its last stage is the big
# rooms in one process (internal/gossiproom's TestBenchRoom, rooms of 50 to
# 500 peers on mocknet, run by `go test` from the suite). Not part of
# `make test`, where TestBenchRoom stays skipped.
bench: build
	GO="$(GO)" $(GO) run ./bench -bin $(BIN) -out bench/results.md

# Only the big rooms in one process (the suite's stage mocknet), written to
# a file of their own, bench/results-bigroom.md, headed with that run's ID:
# bench/results.md stays as `make bench` wrote it, one run throughout.
bench-bigroom: build
	GO="$(GO)" $(GO) run ./bench -bin $(BIN) -only mocknet -out bench/results-bigroom.md

# Two chat peers meeting through a public-sized DHT, simulated in one process
# (issue 18, bench/dhtsim): 500 kad-dht servers on go-libp2p's mocknet, round
# trips of 20 to 300 ms, a fifth of the servers gone, 50 pairs of peers built
# with internal/node, today's settings beside the node's defaults and what
# lies between. About 8 minutes on 2 cores; writes bench/results-dht.md,
# headed with the run's ID and commit (bench/results.md stays as `make bench`
# wrote it). Nothing leaves the process: mocknet has no sockets. Not part of
# `make test`, which runs only its smoke test.
bench-dht:
	$(GO) run ./bench/dhtsim -out bench/results-dht.md

# Each fuzz target for longer than the seed-corpus run that `make test` does;
# a target is PACKAGE:NAME.
FUZZTIME     ?= 30s
FUZZ_TARGETS := ./internal/wire:FuzzLineReader ./internal/wire:FuzzFramedReader ./internal/wire:FuzzFastPath \
	./internal/safetext:FuzzAppendJSON ./internal/safetext:FuzzSanitize \
	./internal/event:FuzzAppendJSON .:FuzzParseFlags ./internal/node:FuzzIdentityFile ./internal/room:FuzzCleanNick \
	./internal/ucdm:FuzzUnmarshalRequest ./internal/ucdm:FuzzUnmarshalResponse ./internal/ucdm:FuzzReadRequest \
	./internal/ucfile:FuzzReadRequest ./internal/privroom:FuzzOpen ./internal/privroom:FuzzAdmit
fuzz:
	@for target in $(FUZZ_TARGETS); do \
		pkg=$${target%%:*}; name=$${target#*:}; \
		echo "== $$name in $$pkg ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

# A local server and two chat peers on loopback, no internet needed.
demo: build
	./scripts/demo.sh ./$(BIN)

# go vet and staticcheck. STATICCHECK_VERSION is a module version the Go
# module proxy serves (staticcheck's release names, like 2026.2.2, are not);
# `go run` builds that version, whatever else is installed.
lint:
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# The browser page (web/): install the pinned packages and rebuild
# web/dist/, which the binary embeds and which is committed. Needs Node.
web:
	cd web && npm ci && npm run build

clean:
	rm -rf bin
