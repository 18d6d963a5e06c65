# Tharga Communication for Go. `make help` lists the targets.
GO            ?= go
STATICCHECK   := honnef.co/go/tools/cmd/staticcheck@v0.6.1
GOVULNCHECK   := golang.org/x/vuln/cmd/govulncheck@v1.1.4
FUZZTIME      ?= 30s
# make test fuzzes each target for a count of inputs, not a duration: at
# the end of a duration, go1.26's fuzz coordinator can fail a target with
# a spurious "context deadline exceeded" on a loaded machine.
TESTFUZZTIME  ?= 3000x
BENCHCOUNT    ?= 5
SOAK_CLIENTS  ?= 500
SOAK_DURATION ?= 5m
FLEET_CLIENTS ?= 10000
FLEET_FLAGS   ?=

.PHONY: help test demo demo-cluster lint vulncheck fuzz bench soak fleet

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

test: ## Run every test with the race detector, the redis, otelcheck and example modules' too (redis needs redis-server), then each fuzz target for TESTFUZZTIME (3000 inputs).
	$(GO) test -race -count=1 ./...
	$(GO) -C redis test -race -count=1 ./...
	$(GO) -C otelcheck test -race -count=1 ./...
	cd examples/cluster && $(GO) test -race -count=1 ./...
	cd examples/prometheus && $(GO) test -race -count=1 ./...
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(TESTFUZZTIME)

demo: ## Run examples/tour: a server and a client exchanging every kind of message.
	$(GO) run ./examples/tour

demo-cluster: ## Run examples/cluster: three nodes over Redis (it starts redis-server), six clients, a node crash.
	cd examples/cluster && $(GO) run .

lint: ## go vet, gofmt and staticcheck (pinned), of the library, redis and otelcheck modules, and vet of examples/prometheus.
	$(GO) vet ./...
	$(GO) -C redis vet ./...
	$(GO) -C otelcheck vet ./...
	$(GO) -C examples/prometheus vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) run $(STATICCHECK) ./...
	$(GO) -C redis run $(STATICCHECK) ./...
	$(GO) -C otelcheck run $(STATICCHECK) ./...

vulncheck: ## govulncheck (pinned) of both modules; it needs to reach the Go vulnerability database.
	$(GO) run $(GOVULNCHECK) ./...
	$(GO) -C redis run $(GOVULNCHECK) ./...

# Each target starts from its seed corpus in testdata/fuzz/<target>, which
# go test also runs as plain tests.
fuzz: ## Run each fuzz target for FUZZTIME (default 30s).
	@for pkg in ./internal/wire/ . ; do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep ^Fuzz); do \
			echo "fuzz $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done
	@for t in $$($(GO) -C redis test -list '^Fuzz' . | grep ^Fuzz); do \
		echo "fuzz redis $$t"; $(GO) -C redis test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) . || exit 1; \
	done

soak: ## Soak: SOAK_CLIENTS (500) clients posting and requesting both ways with churn for SOAK_DURATION (5m).
	SOAK_CLIENTS=$(SOAK_CLIENTS) SOAK_DURATION=$(SOAK_DURATION) $(GO) test -race -count=1 -run '^TestSoak$$' -timeout 0 -v .

# The broadcast across nodes runs 3,000 clients in this process, about
# 7,000 descriptors: raise the limit to 65536, or to the hard limit where
# that is lower.
bench: ## Run the benchmarks (vs raw SignalR and raw WebSocket; across Redis nodes vs one node); print the tables (BENCHCOUNT runs, default 5).
	ulimit -n 65536 2>/dev/null || ulimit -n $$(ulimit -Hn); $(GO) run ./bench/cmd/benchtable -count $(BENCHCOUNT)

# The binary is built once so that the server it restarts starts at once;
# each process needs a file per connection, so the open-file limit is raised
# as far as allowed, in the same shell as the run.
fleet: ## Storm: FLEET_CLIENTS (10000) clients in one process connect at once to a server process, which is killed and restarted; FLEET_CLIENTS=1000 for a quick run.
	@dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && \
	$(GO) build -o "$$dir/fleet" ./bench/fleet && \
	{ ulimit -n 1048576 2>/dev/null || ulimit -n $$(ulimit -H -n); } && \
	echo "open-file limit: $$(ulimit -n)" >&2 && \
	"$$dir/fleet" run -clients $(FLEET_CLIENTS) $(FLEET_FLAGS)
