#!/usr/bin/env bash
# Builds the real kube-apiserver (k8s.io/kubernetes v1.37.2) and etcd that
# plugin/kubetest runs for the end-to-end tests.
#
# Usage: plugin/testdata/kubeserver/build.sh [OUTDIR]
#   OUTDIR defaults to bin/kube at the repository root (git-ignored).
# Does nothing when both binaries exist and are newer than go.mod, go.sum,
# etcd/main.go and this script. Set FORCE=1 to rebuild anyway.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${1:-$root/bin/kube}
mkdir -p "$out"
out=$(cd "$out" && pwd)

fresh() {
	local bin=$1 src
	[ -x "$bin" ] || return 1
	for src in "$here/go.mod" "$here/go.sum" "$here/etcd/main.go" "$here/build.sh"; do
		[ "$bin" -nt "$src" ] || return 1
	done
}

if [ "${FORCE:-}" != 1 ] && fresh "$out/kube-apiserver" && fresh "$out/etcd"; then
	echo "kube-servers: kube-apiserver and etcd in $out are up to date"
	exit 0
fi

# What the Kubernetes release build stamps in (hack/lib/version.sh), so that
# /version and the loopback client's User-Agent say v1.37.2, not v0.0.0-master.
kver=$(cd "$here" && GOWORK=off go list -m -f '{{.Version}}' k8s.io/kubernetes)
kminor=${kver#v1.}
kminor=${kminor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags="$ldflags -X $pkg.gitVersion=$kver -X $pkg.gitMajor=1 -X $pkg.gitMinor=$kminor -X $pkg.gitTreeState=clean"
done

tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "kube-servers: building kube-apiserver $kver and etcd into $out (a few minutes on a cold build cache)..."
start=$(date +%s)
# Both main packages in one go build: one action graph, shared dependencies
# compiled once, and the two links can overlap.
(cd "$here" && GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" \
	-o "$tmp/" k8s.io/kubernetes/cmd/kube-apiserver ./etcd)
mv -f "$tmp/kube-apiserver" "$out/kube-apiserver"
mv -f "$tmp/etcd" "$out/etcd"
end=$(date +%s)
echo "kube-servers: built in $((end - start))s: $("$out/kube-apiserver" --version), etcd $("$out/etcd" --version | sed -n 's/^etcd Version: //p')"
