# bulkhead — see `make help`. Everything the project needs is installed by
# these targets (Debian packages through apt-get, Go modules through go).

GO        ?= go
BIN       := bin/bulkhead
# What `bulkhead version` and bench reports say (GOFLAGS may turn off Go's own VCS stamp).
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
ARGS      ?= --format text
# The detectors `make run` runs; CONFIG= runs capture only.
CONFIG    ?= configs/detectors.yaml
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
GEN_PKGS  := clang-19 llvm-19 libbpf-dev bpftool protobuf-compiler
TEST_PKGS := python3 coreutils nats-server

.PHONY: help build wasm run install uninstall generate check-generated vmlinux test test-privileged bench bench-report bench-micro bench-capture fuzz lint deps-test deps-generate clean

help: ## show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

build: ## build bin/bulkhead and the plugin binaries (no clang or protoc needed: generated code is committed)
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/bulkhead
	$(GO) build -o bin/ ./plugins/...
	$(MAKE) wasm

# The detectors that have a wasm main (plugins/NAME/wasm): each becomes
# bin/bulkhead-plugin-NAME.wasm, for `backend: wasm` (docs/plugins.md).
WASM      := $(patsubst plugins/%/wasm/main.go,%,$(wildcard plugins/*/wasm/main.go))

wasm: ## build the WebAssembly detector modules, bin/bulkhead-plugin-NAME.wasm
	for d in $(WASM); do GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -ldflags "-s -w" -o bin/bulkhead-plugin-$$d.wasm ./plugins/$$d/wasm || exit 1; done

run: build ## build and run the monitor and its detectors as root (ARGS="--format json", CONFIG=other.yaml)
	$(SUDO) ./$(BIN) run $(if $(CONFIG),--config $(CONFIG)) $(ARGS)

PREFIX    ?= /usr/local
LIBRARY   := webshell credaccess tmpexec privesc kernelload ptrace outbound persistence rules

install: build ## install bulkhead, its detectors, a systemd unit and (if none) /etc/bulkhead/bulkhead.yaml (DESTDIR, PREFIX)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/bulkhead $(DESTDIR)/etc/bulkhead $(DESTDIR)/etc/systemd/system $(DESTDIR)/etc/logrotate.d
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/bulkhead
	for d in $(LIBRARY); do install -m 0755 bin/bulkhead-plugin-$$d $(DESTDIR)$(PREFIX)/lib/bulkhead/; done
	[ -e $(DESTDIR)/etc/bulkhead/bulkhead.yaml ] || sed 's|/usr/local|$(PREFIX)|g' deploy/bulkhead.yaml > $(DESTDIR)/etc/bulkhead/bulkhead.yaml
	sed 's|/usr/local|$(PREFIX)|g' deploy/bulkhead.service > $(DESTDIR)/etc/systemd/system/bulkhead.service
	install -m 0644 deploy/bulkhead.logrotate $(DESTDIR)/etc/logrotate.d/bulkhead
	@echo "installed; now: systemctl daemon-reload && systemctl enable --now bulkhead"

uninstall: ## remove what install put in place, except /etc/bulkhead and /var/log/bulkhead
	rm -f $(DESTDIR)$(PREFIX)/bin/bulkhead $(DESTDIR)/etc/systemd/system/bulkhead.service $(DESTDIR)/etc/logrotate.d/bulkhead
	rm -rf $(DESTDIR)$(PREFIX)/lib/bulkhead

# apt-get only when a package is missing, so a ready machine does no network.
define apt_ensure
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

deps-test:
	$(call apt_ensure,$(TEST_PKGS))

deps-generate:
	$(call apt_ensure,$(GEN_PKGS))

generate: deps-generate ## rebuild BPF objects (clang-19) and the plugin wire protocol (protoc)
	cd bpf && $(GO) generate ./...
	mkdir -p .tools
	$(GO) build -o .tools/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
	$(GO) build -o .tools/protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc
	cd backends/goplugin/wire && $(GO) generate ./...

GENERATED := bpf/ backends/goplugin/wire/

check-generated: generate ## fail if committed generated code differs from its sources
	@git diff --exit-code --stat -- $(GENERATED) || { echo "generated code is stale; run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- $(GENERATED))" || { git status --porcelain -- $(GENERATED); echo "untracked generated files"; exit 1; }

vmlinux: deps-generate ## regenerate bpf/headers/x86/vmlinux.h from this kernel's BTF
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/headers/x86/vmlinux.h

test: deps-test ## run all tests; as root the privileged (real kernel) tests run too
	$(GO) test -count=1 -timeout 20m ./...

test-privileged: deps-test ## run only the tests that need root and BPF (fails if not root)
	@[ "$$(id -u)" = 0 ] || { echo "test-privileged needs root: sudo make test-privileged"; exit 1; }
	$(GO) test -count=1 -v ./test/ ./bpf/

bench: build ## the whole benchmark suite (bulkhead bench all, about 5 min; QUICK=1 about 1.5): report in bench-results/
	$(SUDO) ./$(BIN) bench all $(if $(QUICK),--quick) --out bench-results

bench-report: build ## regenerate the committed report, docs/benchmarks/ (bench all --quick)
	$(SUDO) ./$(BIN) bench all --quick --report-only --out docs/benchmarks
	rm -f docs/benchmarks/bench.log

bench-micro: ## micro-benchmarks: decode, encode, wire codec, dispatch per backend
	$(GO) test -run '^$$' -bench . -benchmem ./pipeline/... ./backends/goplugin/wire/
	$(GO) test -run '^$$' -bench BenchmarkDispatch -benchtime 2000000x ./backends/

bench-capture: build ## monitored vs unmonitored syscall rate (root)
	$(SUDO) ./$(BIN) bench capture --log-level warn

fuzz: ## fuzz the decoders of what is hostile: kernel records, plugin batches and answers, recordings, output escaping (FUZZTIME=60s each)
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $${FUZZTIME:-60s} -fuzzminimizetime 2s ./pipeline/decode/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $${FUZZTIME:-60s} -fuzzminimizetime 2s ./backends/goplugin/wire/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeFlat$$' -fuzztime $${FUZZTIME:-60s} -fuzzminimizetime 2s ./backends/goplugin/wire/
	$(GO) test -run '^$$' -fuzz '^FuzzParseResult$$' -fuzztime $${FUZZTIME:-60s} -fuzzminimizetime 2s ./backends/goplugin/wire/
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $${FUZZTIME:-60s} -fuzzminimizetime 2s ./pipeline/recording/
	$(GO) test -run '^$$' -fuzz '^FuzzJSONString$$' -fuzztime $${FUZZTIME:-60s} -fuzzminimizetime 2s ./pipeline/sinks/

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

clean:
	rm -rf bin
