# kubectl-device-login: `make demo` shows it working, `make test` runs every test.

SHELL       := bash
GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS     := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN         := bin/kubectl-device_login
NODE_DIR    := plugin/providertest/testdata/oidc-provider
NODE_READY  := $(NODE_DIR)/node_modules/.package-lock.json
PREFIX      ?= $(or $(shell $(GO) env GOBIN),$(shell $(GO) env GOPATH)/bin)

.PHONY: all build demo test test-short race test-deps bench-deps check node-deps kube-servers stress krew-test bench bench-quick install clean

all: build

## build: the plugin binary, into bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/kubectl-device_login

## demo: a whole device login through the real kubectl against a local provider (AUTO_APPROVE=1 approves by itself)
demo: build
	$(GO) run ./cmd/device-login-demo -plugin $(BIN) $(if $(filter 1,$(AUTO_APPROVE)),-auto-approve)

## test-deps: every program the tests run is here (zbarimg, the keyring daemons, curl, node, kubectl…); as root
##            with apt-get it installs the missing Debian packages, else it stops and prints the command to run
test-deps:
	.ci/deps test
	$(GO) mod download

## bench-deps: the same for make bench (hyperfine, strace, GNU time)
bench-deps:
	.ci/deps bench

## node-deps: npm's oidc-provider for the tests, from the committed lockfile
node-deps: $(NODE_READY)
$(NODE_READY): $(NODE_DIR)/package-lock.json
	npm ci --prefix $(NODE_DIR) --no-audit --no-fund
	touch $@

## kube-servers: kube-apiserver v1.37.2 and etcd built from the Go module proxy into bin/kube (reused when fresh)
kube-servers:
	plugin/testdata/kubeserver/build.sh bin/kube

## check: formatting and vet
check:
	@unformatted=$$(gofmt -l cmd plugin cache); if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

## test: every test, against the real providers, client-go and kubectl (the black-box tests
##       mostly wait on providers and timers, so four run at once)
test: test-deps build node-deps kube-servers check
	DEVICE_LOGIN_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -parallel 4 -timeout 20m ./...

## test-short: the fast, in-process tests alone (no providers, no binary runs), in seconds
test-short:
	$(GO) test -short -count=1 ./...

## race: the in-process tests under the race detector, and the black-box tests whose
##       scripted servers run inside the test process
race: build
	$(GO) test -race -short -count=1 ./...
	DEVICE_LOGIN_BIN=$(CURDIR)/$(BIN) $(GO) test -race -count=1 -parallel 4 -run 'Secret|Confidential|RefreshFailsWhile|ExpiryNever' ./plugin/

## stress: 50/20-process stampedes, 100 cache hits under a held lock, a read-only cache (root), 200 SIGKILLs during cache writes,
##         and the session model's long run (random sequences for ~8 minutes; see plugin/model_test.go)
stress: build node-deps
	DEVICE_LOGIN_STRESS=1 DEVICE_LOGIN_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 20m -run 'Stampede|CacheHitsDoNotWait|ReadOnlyCache|KillDuringSave|TestSessionModel' ./plugin/ ./cache/

## krew-test: install the dist archives with a krew built from the module proxy, and sign in through it
krew-test: build node-deps
	DEVICE_LOGIN_KREW=1 DEVICE_LOGIN_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 30m -run '^TestKrew$$' ./plugin/

## bench: cache hit against two floors, peak RSS, size, refresh, stampedes, hit storm, login moment, system calls,
##        allocations; a table with the goals and bin/bench/results.json (needs hyperfine, strace and GNU time)
bench: bench-deps build node-deps
	$(GO) run ./cmd/device-login-bench -plugin $(BIN) -out bin/bench

## bench-quick: the same with few runs, so that the benchmark cannot rot (CI); its timings are rough
bench-quick: bench-deps build node-deps
	$(GO) run ./cmd/device-login-bench -plugin $(BIN) -out bin/bench -quick

## install: the plugin onto PATH as kubectl-device_login, and kubectl_complete-device_login (a link to it) that
##          kubectl runs for kubectl device-login <TAB> (PREFIX=$(PREFIX))
install: build
	install -d $(PREFIX)
	install -m 0755 $(BIN) $(PREFIX)/kubectl-device_login
	ln -sf kubectl-device_login $(PREFIX)/kubectl_complete-device_login

# Release, lint and cross-compilation targets.
KREW_VERSION      := v0.5.0
STATICCHECK       := honnef.co/go/tools/cmd/staticcheck@v0.8.2
DIST_URI_BASE     ?= https://github.com/devicelogin/kubectl-device-login/releases/download
CROSS_PLATFORMS   := darwin/arm64 windows/amd64

.PHONY: dist lint cross

## dist: reproducible release archives for six platforms, their sha256 files and the krew manifest
##       (dist/device-login.yaml, copied to krew-manifest.yaml), checked by krew's validator; VERSION=vX.Y.Z
dist:
	rm -rf dist
	$(GO) run ./cmd/device-login-dist -version '$(VERSION)' -commit '$(COMMIT)' -out dist -uri-base '$(DIST_URI_BASE)' -manifest krew-manifest.yaml
	$(GO) run sigs.k8s.io/krew/cmd/validate-krew-manifest@$(KREW_VERSION) -skip-install -manifest dist/device-login.yaml

## lint: make check, then staticcheck (run from the Go module proxy, not in go.mod)
lint: check
	$(GO) run $(STATICCHECK) ./...

## cross: every package and test compiles for macOS and Windows (go build and go vet)
cross:
	@set -e; for p in $(CROSS_PLATFORMS); do \
	  echo "GOOS=$${p%/*} GOARCH=$${p#*/}: go build ./... && go vet ./..."; \
	  CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build ./...; \
	  CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) vet ./...; \
	done

clean:
	rm -rf bin dist
