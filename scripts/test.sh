#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine, then runs every test.
# Idempotent: a second run reuses the cached kube-apiserver fixture build and
# cargo's target directory.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test.sh %(%H:%M:%S)T] %s\n' -1 "$*"; }

need_apt=()
command -v go >/dev/null || need_apt+=(golang-go)
# The speaker's network-namespace tests (docs/testing-netns.md): iproute2 for
# `ip netns`, Thomas Habets' arping (conflicts with iputils-arping, which
# must not be asked for as well), ping, and Debian's python3 for ndprobe.py.
command -v ip >/dev/null || need_apt+=(iproute2)
case "$(arping --help 2>&1 || true)" in *Habets*) ;; *) need_apt+=(arping) ;; esac
command -v ping >/dev/null || need_apt+=(iputils-ping)
[ -x /usr/bin/python3 ] || command -v python3 >/dev/null || need_apt+=(python3)
# The image test (crates/ferrolb/tests/image.rs, docs/image.md): umoci
# assembles and unpacks the OCI layout, objcopy splits the debug info.
command -v umoci >/dev/null || need_apt+=(umoci)
command -v objcopy >/dev/null || need_apt+=(binutils)
# The BGP and BFD engines' interop tests (docs/bgp.md, docs/bfd.md): FRR's
# bgpd and bfdd, BIRD 2 and GoBGP, each run inside the tests' namespaces
# (the packages' own services are not used).
[ -x /usr/lib/frr/bgpd ] && [ -x /usr/lib/frr/bfdd ] || need_apt+=(frr)
command -v bird >/dev/null || need_apt+=(bird2)
command -v radvd >/dev/null || need_apt+=(radvd)
command -v gobgpd >/dev/null || need_apt+=(gobgpd)
command -v cargo >/dev/null || { echo "cargo (Rust) is required: https://rustup.rs" >&2; exit 1; }
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

# The real kube-apiserver + etcd the integration tests run against, built
# from the Kubernetes Go modules; cached after the first build.
if [ -x tests/kube-fixture/build.sh ]; then
  log "building (or reusing) the kube-apiserver fixture"
  FERROLB_KUBE_FIXTURE="$(tests/kube-fixture/build.sh | tail -n 1)"
  export FERROLB_KUBE_FIXTURE
  log "fixture: $FERROLB_KUBE_FIXTURE"
fi

# One build per clean clone: incremental caches would only add gigabytes.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
log "cargo test --workspace"
cargo test --workspace --locked --no-fail-fast
