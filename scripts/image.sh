#!/usr/bin/env bash
# Builds the ferrolb container image without a Docker daemon, as an OCI image
# layout (docs/image.md):
#
#   1. a fully static release binary of a commit (default HEAD), built from a
#      `git archive` of that commit (uncommitted edits never reach an image):
#      glibc with crt-static, since no musl target can be installed here;
#   2. debug info split off with objcopy: the image gets the stripped binary,
#      `ferrolb.debug` (DWARF + symbols, found through .gnu_debuglink) stays
#      beside the layout;
#   3. an image FROM scratch holding only /ferrolb, entrypoint /ferrolb,
#      user 65534:65534, assembled with umoci (no daemon, no registry).
#
# Output, under ${FERROLB_IMAGE_DIR:-target/image}:
#   layout/          OCI image layout, tag `ferrolb:<version>`
#   ferrolb          the stripped binary in the image
#   ferrolb.debug    its debug info
#   image.env        key=value facts about the build (sizes, digests)
# and on stdout the lines of image.env.
#
# The layout is reused while the stripped binary's sha256 is unchanged
# (recorded in image.env), so a second run costs one cargo no-op build.
#
# Usage: scripts/image.sh [--rev REV] [--binary PATH] [--compare-metallb]
#   --rev REV          commit to build (default HEAD)
#   --binary PATH      package this static binary instead of building one
#   --compare-metallb  also package MetalLB's controller and speaker (from
#                      benches/metallb/build.sh) the same way and print sizes
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

rev=HEAD
binary=""
compare=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rev) rev="$2"; shift 2 ;;
        --binary) binary="$(realpath "$2")"; shift 2 ;;
        --compare-metallb) compare=1; shift ;;
        *) echo "image.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

log() { printf '[image.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
for tool in umoci objcopy readelf gzip; do
    command -v "$tool" >/dev/null || { echo "image.sh: $tool not found (apt-get install umoci binutils gzip)" >&2; exit 1; }
done

target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
out="${FERROLB_IMAGE_DIR:-$target_dir/image}"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

host="$(rustc -vV | sed -n 's/^host: //p')"

# Fails unless $1 is a static ELF executable (no program interpreter, no
# shared libraries): the image has no /lib.
check_static() {
    if readelf -l "$1" | grep -q 'Requesting program interpreter'; then
        echo "image.sh: $1 is dynamically linked" >&2
        readelf -d "$1" | grep NEEDED >&2 || true
        exit 1
    fi
}

if [[ -z "$binary" ]]; then
    commit="$(git rev-parse --verify "$rev^{commit}")"
    # One fixed source directory: the cargo fingerprints of dependencies stay
    # valid from commit to commit, only the workspace crates recompile.
    src="$out/src"
    if [[ "$(cat "$out/src.commit" 2>/dev/null)" != "$commit" ]]; then
        log "exporting $commit"
        rm -rf "$src"
        mkdir -p "$src"
        git archive "$commit" | tar -x -C "$src"
        echo "$commit" >"$out/src.commit"
    fi
    log "cargo build --release (static, $host)"
    # crt-static with the gnu target links glibc, libgcc and ring's C parts
    # statically. It only applies to target artifacts (with --target), not to
    # build scripts and proc macros.
    (cd "$src" && CARGO_TARGET_DIR="$target_dir" RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --release --locked -p ferrolb --target "$host")
    binary="$target_dir/$host/release/ferrolb"
else
    commit="$(git rev-parse --verify "$rev^{commit}") (binary given: $binary)"
fi
check_static "$binary"

# Debug info apart: the debug file keeps DWARF and the symbol table; the
# shipped binary keeps neither, only a .gnu_debuglink naming the debug file
# (with its CRC), so gdb/addr2line find it when it sits beside the binary or
# under /usr/lib/debug.
work="$(mktemp -d "$out/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT
objcopy --only-keep-debug "$binary" "$work/ferrolb.debug"
objcopy --strip-all --add-gnu-debuglink="$work/ferrolb.debug" "$binary" "$work/ferrolb"
chmod 0755 "$work/ferrolb"
check_static "$work/ferrolb"
version="$("$work/ferrolb" --version | awk '{print $2}')"
sha="$(sha256sum "$work/ferrolb" | cut -d' ' -f1)"

# Packages one static binary as an image FROM scratch: $1 layout dir, $2 tag,
# $3 binary, $4 path in the image, $5 user. Layer timestamps are fixed so the
# same binary gives the same layer digest.
package() {
    local layout="$1" tag="$2" bin="$3" path="$4" user="$5" bundle="$work/bundle-$2"
    rm -rf "$layout"
    umoci init --layout "$layout"
    umoci new --image "$layout:$tag"
    umoci unpack --image "$layout:$tag" "$bundle" >/dev/null
    install -m 0755 "$bin" "$bundle/rootfs$path"
    touch -h -d @0 "$bundle/rootfs$path" "$bundle/rootfs"
    umoci repack --image "$layout:$tag" --history.created 1970-01-01T00:00:00Z \
        --history.created_by "scripts/image.sh: COPY $path" "$bundle"
    umoci config --image "$layout:$tag" --no-history \
        --config.entrypoint "$path" --config.cmd --help --config.user "$user" \
        --config.workingdir / --os linux --architecture amd64 --created 1970-01-01T00:00:00Z
    umoci gc --layout "$layout"
    rm -rf "$bundle"
    # A second, independent reader of the layout.
    if command -v skopeo >/dev/null; then
        skopeo inspect --config "oci:$layout:$tag" | python3 -c '
import json, sys
c = json.load(sys.stdin)
assert c["os"] == "linux" and c["architecture"] == "amd64", c
assert c["config"]["Entrypoint"] == [sys.argv[1]], c["config"]
assert len(c["rootfs"]["diff_ids"]) == 1, c["rootfs"]' "$path"
    fi
}

# Bytes a registry stores and a node pulls for an image (manifest, config and
# compressed layers), and the manifest digest.
sizes() {
    python3 - "$1" "$2" <<'EOF'
import json, sys, os
layout, tag = sys.argv[1], sys.argv[2]
index = json.load(open(os.path.join(layout, "index.json")))
desc = next(m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
blob = lambda d: os.path.join(layout, "blobs", *d["digest"].split(":"))
manifest = json.load(open(blob(desc)))
compressed = sum(l["size"] for l in manifest["layers"]) + manifest["config"]["size"] + desc["size"]
print(compressed, desc["digest"])
EOF
}

layout="$out/layout"
if [[ "$(sed -n 's/^binary_sha256=//p' "$out/image.env" 2>/dev/null)" == "$sha" && -f "$layout/index.json" ]]; then
    log "image for this binary already built"
else
    log "packaging ferrolb $version"
    package "$layout" "$version" "$work/ferrolb" /ferrolb 65534:65534
    read -r compressed digest <<<"$(sizes "$layout" "$version")"
    cp "$work/ferrolb" "$out/ferrolb"
    cp "$work/ferrolb.debug" "$out/ferrolb.debug"
    {
        echo "layout=$layout"
        echo "tag=$version"
        echo "manifest_digest=$digest"
        echo "commit=$commit"
        echo "binary_sha256=$sha"
        echo "unstripped_bytes=$(stat -c %s "$binary")"
        echo "binary_bytes=$(stat -c %s "$work/ferrolb")"
        echo "debug_bytes=$(stat -c %s "$work/ferrolb.debug")"
        echo "image_compressed_bytes=$compressed"
    } >"$out/image.env"
fi

if [[ "$compare" == 1 ]]; then
    log "building (or reusing) MetalLB's binaries"
    paths="$(benches/metallb/build.sh)"
    mversion="$(sed -n 's/^metallb-version=//p' <<<"$paths")"
    for component in controller speaker; do
        bin="$(sed -n "s/^metallb-$component=//p" <<<"$paths")"
        [[ -x "$bin" ]] || { echo "image.sh: benches/metallb/build.sh gave no $component" >&2; exit 1; }
        check_static "$bin"
        mlayout="$out/metallb-$component"
        package "$mlayout" "$mversion" "$bin" "/$component" 65534:65534
        read -r compressed _ <<<"$(sizes "$mlayout" "$mversion")"
        # Upstream ships the binary as `go build` leaves it (symbols and
        # DWARF); the stripped figure shows what that costs.
        objcopy --strip-all "$bin" "$work/$component.stripped"
        echo "metallb_${component}_bytes=$(stat -c %s "$bin")"
        echo "metallb_${component}_stripped_bytes=$(stat -c %s "$work/$component.stripped")"
        echo "metallb_${component}_image_compressed_bytes=$compressed"
    done >"$out/metallb.env"
    echo "metallb_version=$mversion" >>"$out/metallb.env"
fi

cat "$out/image.env"
[[ "$compare" == 1 ]] && cat "$out/metallb.env"
exit 0
