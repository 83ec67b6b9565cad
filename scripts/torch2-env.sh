#!/usr/bin/env bash
# A torch-2 Python for distorch's Python tests, from Debian's archive alone: a chroot of a newer
# Debian release, kept outside the repository so every clone on this machine reuses it.
#
#   scripts/torch2-env.sh [--release trixie|sid] setup      create it, or bring it up to date
#   scripts/torch2-env.sh [--release trixie|sid] status     print what it is (exit 1: not set up)
#   scripts/torch2-env.sh [--release trixie|sid] run CMD…   run CMD inside it, in the current
#                                                          directory and environment
#
#   trixie (default)  Debian 13, stable: python3-torch 2.6, grpcio, protobuf, numpy, pytest,
#                     safetensors. CI uses this one: a stable release does not move under it.
#   sid               Debian unstable: python3-torch 2.14, transformers, gguf and most of
#                     ComfyUI's requirements, for runs against a real ComfyUI checkout. It moves:
#                     nothing in CI depends on it.
#
# Where: $DISTORCH_TORCH2_ROOT, default /var/tmp/distorch-<release> (about 1.3 GB for trixie,
# 2.5 GB for sid). `setup` takes 3-5 minutes the first time, a few seconds after that.
#
# How `run` works: in a private mount namespace (unshare -m; nothing stays mounted after it
# returns, and concurrent runs do not see each other's mounts) it binds /proc, /sys, /dev,
# /dev/shm, /tmp and the current directory's repository at their own paths, binds the host's
# whole file system tree at /run/host, and chroots. Paths under /tmp and under the repository mean the
# same file on both sides.
#
# distorchd and distorchctl are not rebuilt inside: the chroot's libraries differ from the
# Debian 12 ones they were built against (Abseil 20240722 vs 20220623, t64 sonames). Each runs
# from the host's build, chrooted back into the host's tree at /run/host (`host-exec BINARY
# ARGS…`, installed by setup): the same binary with the same libraries that the Debian 12 tests
# run; only the Python side changes. See docs/testing.md.
#
# Needs root (debootstrap, chroot, unshare -m); as a normal user it re-runs itself with sudo.
set -euo pipefail

RELEASE=trixie
if [[ "${1:-}" == --release ]]; then RELEASE=${2:?--release needs trixie or sid}; shift 2; fi
case "$RELEASE" in
  trixie|sid) ;;
  *) echo "torch2-env: --release must be trixie or sid, not '$RELEASE'" >&2; exit 2 ;;
esac
ROOT=${DISTORCH_TORCH2_ROOT:-/var/tmp/distorch-$RELEASE}
MIRROR=${DISTORCH_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# What the Python tests import; sid adds what a real ComfyUI run needs.
PACKAGES=(python3 python3-torch python3-numpy python3-grpcio python3-protobuf python3-pytest
          python3-safetensors python3-yaml python3-psutil ca-certificates)
if [[ "$RELEASE" == sid ]]; then
  PACKAGES+=(python3-torchvision python3-torchaudio python3-transformers python3-tokenizers
             python3-sentencepiece python3-einops python3-aiohttp python3-yarl python3-pil
             python3-scipy python3-tqdm python3-alembic python3-sqlalchemy python3-pydantic
             python3-pydantic-settings python3-av python3-requests python3-gguf python3-filelock
             python3-simpleeval python3-blake3 python3-opengl curl)
fi

if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "torch2-env: needs root (debootstrap, chroot)" >&2; exit 2; }
  exec sudo --preserve-env "$0" --release "$RELEASE" "$@"
fi

ready() { [[ -f "$ROOT/.distorch-ready" ]] && [[ "$(cat "$ROOT/.distorch-ready")" == "${PACKAGES[*]}" ]]; }

setup() {
  if ready; then echo "torch2-env: $RELEASE chroot at $ROOT is ready"; return; fi
  command -v debootstrap >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap; }
  local t0=$SECONDS
  if [[ ! -x "$ROOT/usr/bin/apt-get" ]]; then
    echo "torch2-env: debootstrap $RELEASE into $ROOT"
    rm -rf "$ROOT.partial"
    debootstrap --variant=minbase "$RELEASE" "$ROOT.partial" "$MIRROR" > "$ROOT.debootstrap.log" 2>&1 || {
      tail -20 "$ROOT.debootstrap.log" >&2; echo "torch2-env: debootstrap failed" >&2; exit 1; }
    mv "$ROOT.partial" "$ROOT"
  fi
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  # sid's Release file can look expired to a machine whose clock runs ahead of the mirror's.
  echo 'Acquire::Check-Valid-Until "false";' > "$ROOT/etc/apt/apt.conf.d/99distorch-novalid"
  echo 'APT::Install-Recommends "false";' > "$ROOT/etc/apt/apt.conf.d/99distorch-norec"
  in_root apt-get update -qq
  in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${PACKAGES[@]}" > "$ROOT/.apt.log" 2>&1 || {
    tail -20 "$ROOT/.apt.log" >&2; echo "torch2-env: apt-get install failed" >&2; exit 1; }
  in_root apt-get clean
  install_host_exec
  [[ "$RELEASE" == sid ]] && install_sid_shims
  echo "${PACKAGES[*]}" > "$ROOT/.distorch-ready"
  echo "torch2-env: $RELEASE ready in $((SECONDS - t0)) s: $(status_line)"
}

# Runs a Debian 12 binary from the host build in the host's own file system tree.
install_host_exec() {
  cat > "$ROOT/usr/local/bin/host-exec" <<'EOF'
#!/bin/sh
# host-exec BINARY ARGS...: BINARY was built on the host (Debian 12) and needs the host's
# libraries: run it chrooted back into the host's tree, which torch2-env.sh binds at /run/host,
# in the same working directory (/tmp and the repository are the same paths on both sides).
exec chroot /run/host /bin/sh -c 'cd "$0" 2>/dev/null || cd /; exec "$@"' "$PWD" "$@"
EOF
  chmod 755 "$ROOT/usr/local/bin/host-exec"
}

# sid's transformers 5.12 calls tokenizers' RobertaProcessing(sep=..., cls=...), which
# tokenizers 0.23 names (sep, cls_token): CLIP's tokenizer cannot be built (Debian's mismatch,
# not ComfyUI's). A .pth in Debian's dist-packages (processed once that folder, which holds
# tokenizers, is on sys.path) maps the name when, and only when, the real signature lacks it.
install_sid_shims() {
  local site=/usr/lib/python3/dist-packages
  cat > "$ROOT$site/distorch_sid_fixes.py" <<'EOF'
"""RobertaProcessing(cls=...) -> cls_token=... for sid's transformers/tokenizers mismatch."""
try:
    from tokenizers import processors as _processors
    _original = _processors.RobertaProcessing
    try:
        _original(sep=("</s>", 2), cls=("<s>", 0))
    except TypeError:
        def RobertaProcessing(*args, cls=None, **kwargs):
            if cls is not None:
                kwargs["cls_token"] = cls
            return _original(*args, **kwargs)
        RobertaProcessing.__doc__ = _original.__doc__
        _processors.RobertaProcessing = RobertaProcessing
except Exception:  # no tokenizers, or another shape: leave it alone
    pass
EOF
  echo "import distorch_sid_fixes" > "$ROOT$site/distorch_sid_fixes.pth"
  rm -f "$ROOT"/usr/local/lib/python3*/dist-packages/distorch_sid_fixes.{py,pth}
}

status_line() {
  in_root python3 -c '
import sys, torch, grpc, google.protobuf as pb
debian = open("/etc/debian_version").read().strip()
print("Debian %s, Python %s, torch %s, grpcio %s, protobuf %s"
      % (debian, sys.version.split()[0], torch.__version__, grpc.__version__, pb.__version__))'
}

# in_root CMD...: CMD in the chroot with its own mounts (namespace dies with CMD).
in_root() {
  local repo
  repo=$(git -C "$PWD" rev-parse --show-toplevel 2>/dev/null || echo "$PWD")
  unshare --mount --propagation private -- /bin/sh -c '
    set -e
    root=$1; repo=$2; shift 2
    mkdir -p "$root/run/host" "$root$repo"
    mount --rbind / "$root/run/host"
    for d in proc sys dev dev/shm tmp; do mkdir -p "$root/$d"; mount --rbind "/$d" "$root/$d"; done
    [ "$repo" = / ] || mount --bind "$repo" "$root$repo"
    exec chroot "$root" /bin/sh -c "cd \"\$0\" 2>/dev/null || cd /; exec \"\$@\"" "$PWD" "$@"
  ' sh "$ROOT" "$repo" "$@"
}

cmd=${1:-}
[[ -n "$cmd" ]] && shift
case "$cmd" in
  setup) setup ;;
  status) ready || { echo "torch2-env: no $RELEASE chroot at $ROOT (run: $0 --release $RELEASE setup)"; exit 1; }
          status_line ;;
  run)
    ready || { echo "torch2-env: no $RELEASE chroot at $ROOT (run: $0 --release $RELEASE setup)" >&2; exit 77; }
    [[ $# -gt 0 ]] || { echo "torch2-env: run needs a command" >&2; exit 2; }
    in_root "$@" ;;
  *) sed -n 2,31p "$0"; exit 2 ;;
esac
