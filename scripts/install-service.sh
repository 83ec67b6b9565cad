#!/usr/bin/env bash
# Installs distorchd as a systemd service: builds, installs binaries under
# /usr/local, the example config to /etc/distorch (kept if present), creates
# the `distorch` group (add ComfyUI's user to it), enables and starts the unit.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
BUILD_DIR=${DISTORCH_BUILD_DIR:-build}
install -Dm755 "$BUILD_DIR/daemon/distorchd" /usr/local/bin/distorchd
install -Dm755 "$BUILD_DIR/daemon/ctl/distorchctl" /usr/local/bin/distorchctl
[[ -f /etc/distorch/distorchd.toml ]] || install -Dm644 config/distorchd.toml /etc/distorch/distorchd.toml
install -Dm644 systemd/distorchd.service /etc/systemd/system/distorchd.service
install -Dm644 docs/operations.md /usr/local/share/doc/distorch/operations.md
getent group distorch >/dev/null || groupadd --system distorch
/usr/local/bin/distorchd --config /etc/distorch/distorchd.toml --check-config
systemctl daemon-reload
systemctl enable --now distorchd
echo "installed; add ComfyUI's user to the distorch group: usermod -aG distorch USER"
