#!/usr/bin/env bash
# Installs distorch's ComfyUI node into a ComfyUI checkout:
#
#   scripts/install-comfyui-node.sh COMFYUI_DIR [--python PY] [--name NAME]
#
# 1. makes sure the gRPC stubs the node imports exist (client_py/distorch/v1/, generated from
#    proto/distorch/v1/broker.proto; the build writes them, else this generates them with
#    protoc + grpc_python_plugin, or with PY -m grpc_tools.protoc);
# 2. links client_py/distorch/comfy/comfyui_node to COMFYUI_DIR/custom_nodes/NAME (default
#    distorch), replacing an earlier link of that name, never a directory;
# 3. checks that ComfyUI's Python imports everything the node needs (grpc, google.protobuf,
#    torch, distorch and its stubs), and says exactly what to install if not (exit 1).
#
# PY defaults to COMFYUI_DIR/venv/bin/python, COMFYUI_DIR/.venv/bin/python, else python3.
# Then restart ComfyUI. Coming from ComfyUI-MultiGPU: remove it from custom_nodes/ first.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
NODE_DIR=$REPO/client_py/distorch/comfy/comfyui_node
STUBS=$REPO/client_py/distorch/v1
PROTO_ROOT=$REPO/proto
PROTO=$PROTO_ROOT/distorch/v1/broker.proto

die() { echo "install-comfyui-node: $*" >&2; exit 2; }
usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

COMFY=""; PY=""; NAME=distorch
while [[ $# -gt 0 ]]; do
  case "$1" in
    --python) PY=${2:?--python needs a path}; shift 2 ;;
    --name) NAME=${2:?--name needs a name}; shift 2 ;;
    -h|--help) usage ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [[ -z "$COMFY" ]] || die "one COMFYUI_DIR only"; COMFY=$1; shift ;;
  esac
done
[[ -n "$COMFY" ]] || usage
[[ -d "$COMFY" ]] || die "$COMFY is not a directory"
COMFY=$(cd "$COMFY" && pwd)
if [[ ! -d "$COMFY/custom_nodes" || ! ( -f "$COMFY/main.py" || -d "$COMFY/comfy" ) ]]; then
  die "$COMFY does not look like a ComfyUI checkout (it needs custom_nodes/ and main.py)"
fi
if [[ -z "$PY" ]]; then
  for candidate in "$COMFY/venv/bin/python" "$COMFY/.venv/bin/python"; do
    if [[ -x "$candidate" ]]; then PY=$candidate; break; fi
  done
  PY=${PY:-$(command -v python3 || true)}
  [[ -n "$PY" ]] || die "no python3 on PATH: pass ComfyUI's Python with --python"
  echo "install-comfyui-node: using $PY as ComfyUI's Python (pass --python to choose another)"
fi
[[ -x "$PY" ]] || PY=$(command -v "$PY" || true)
[[ -n "$PY" && -x "$PY" ]] || die "--python: not an executable"

# 1. The stubs.
if [[ ! -f "$STUBS/broker_pb2.py" || ! -f "$STUBS/broker_pb2_grpc.py" || "$PROTO" -nt "$STUBS/broker_pb2.py" ]]; then
  out=$REPO/client_py
  if command -v protoc >/dev/null && command -v grpc_python_plugin >/dev/null; then
    protoc --proto_path="$PROTO_ROOT" --python_out="$out" --grpc_python_out="$out" \
      --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" "$PROTO"
  elif "$PY" -c "import grpc_tools" 2>/dev/null; then
    "$PY" -m grpc_tools.protoc --proto_path="$PROTO_ROOT" --python_out="$out" \
      --grpc_python_out="$out" "$PROTO"
  else
    die "the gRPC stubs in $STUBS are missing and nothing here can generate them: build distorch
  (cmake --build build --target distorch_python_stubs), or install a generator:
  apt-get install protobuf-compiler protobuf-compiler-grpc   (Debian/Ubuntu), or
  $PY -m pip install grpcio-tools"
  fi
  touch "$STUBS/__init__.py"
  echo "install-comfyui-node: generated the gRPC stubs in $STUBS"
fi

# 2. The link.
TARGET=$COMFY/custom_nodes/$NAME
if [[ -L "$TARGET" ]]; then
  previous=$(readlink "$TARGET")
  [[ "$previous" == "$NODE_DIR" ]] || echo "install-comfyui-node: replacing $TARGET -> $previous"
  rm "$TARGET"
elif [[ -e "$TARGET" ]]; then
  die "$TARGET exists and is not a link: move it away, or pass --name another name"
fi
ln -s "$NODE_DIR" "$TARGET"
echo "install-comfyui-node: linked $TARGET -> $NODE_DIR"
for other in "$COMFY"/custom_nodes/*; do
  case "$(basename "$other")" in
    *[Mm]ulti[Gg][Pp][Uu]*)
      echo "install-comfyui-node: $other is installed: distorch registers ComfyUI-MultiGPU's node" \
           "names itself; remove it (rm -r \"$other\") and restart ComfyUI" ;;
  esac
done

# 3. The check, with ComfyUI's Python.
"$PY" - "$REPO/client_py" "$NODE_DIR/requirements.txt" "$COMFY" "$PY" <<'EOF'
import importlib, os, sys
client_py, requirements, comfy, py = sys.argv[1:5]
problems = []
for module, fix in (("grpc", f"{py} -m pip install -r {requirements}"),
                    ("google.protobuf", f"{py} -m pip install -r {requirements}"),
                    ("torch", f"torch is ComfyUI's own: {py} -m pip install -r "
                              f"{os.path.join(comfy, 'requirements.txt')}")):
    try:
        importlib.import_module(module)
    except ImportError as e:
        problems.append((module, e, fix))
try:
    import distorch  # noqa: F401  a pip-installed distorch wins, as in the node
except ImportError:
    sys.path.insert(0, client_py)
for module in ("distorch", "distorch.v1.broker_pb2", "distorch.v1.broker_pb2_grpc", "distorch.client"):
    if any(p[0] in ("grpc", "google.protobuf") for p in problems) and module != "distorch":
        break  # those need grpc and protobuf first
    try:
        importlib.import_module(module)
    except Exception as e:
        problems.append((module, e, "regenerate the stubs: rm -r " + os.path.join(client_py, "distorch", "v1")
                         + " and run this command again" if ".v1." in module else "report it"))
if problems:
    print(f"install-comfyui-node: ComfyUI's Python ({py}) cannot import what distorch needs:")
    fixes = []
    for module, error, fix in problems:
        print(f"  {module}: {error}")
        if fix not in fixes:
            fixes.append(fix)
    print("install:")
    for fix in fixes:
        print(f"  {fix}")
    sys.exit(1)
import distorch
print(f"install-comfyui-node: ok: {py} imports distorch ({os.path.dirname(distorch.__file__)}), "
      f"grpc, protobuf, torch and the stubs")
EOF

# The daemon ComfyUI starts on demand (docs/comfyui.md, "Auto-start").
if [[ -n "${DISTORCH_DAEMON_BIN:-}" ]]; then
  echo "install-comfyui-node: ComfyUI will start $DISTORCH_DAEMON_BIN when no daemon runs"
elif command -v distorchd >/dev/null; then
  echo "install-comfyui-node: ComfyUI will start $(command -v distorchd) when no daemon runs"
else
  built=$REPO/${DISTORCH_BUILD_DIR:-build}/daemon/distorchd
  hint="build it (./scripts/build.sh)"
  [[ -x "$built" ]] && hint="e.g. $built"
  echo "install-comfyui-node: note: no distorchd on PATH, so ComfyUI cannot start one on demand;" \
       "put it on PATH or set DISTORCH_DAEMON_BIN ($hint), or run the service (docs/operations.md)"
fi
echo "install-comfyui-node: restart ComfyUI to load distorch"
