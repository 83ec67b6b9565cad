"""Flows on where the daemon comes from: each starts another ComfyUI on the same base
directory (its own user and temp directories, an in-memory database) with its own
distorch environment. They need DISTORCH_REAL_WORK, _COMFYUI_DIR, _PYTHON,
_COMFY_FLAGS and _DAEMON_BIN (run_real.sh sets them; a ComfyUI with --base-directory).

  autostart         another ComfyUI (port+1) with no daemon on its socket: it starts one
                    (DISTORCH_DAEMON_BIN/_ARGS/_IDLE_EXIT_S), logs where, serves a
                    prompt through it; the daemon outlives ComfyUI; the flow then stops
                    exactly that daemon (pid from the log, checked against its command line)
  no_drop           another ComfyUI (port+2), DISTORCH_AUTOSTART=0, no daemon: a DisTorch2
                    node with an allocation fails the prompt naming the socket; a
                    device-only node loads the stock way; one warning
"""

import os
import subprocess
import time
import urllib.error

from harness import (COMFY_DIR, COMFY_FLAGS, COMFY_PYTHON, DAEMON_BIN, PROBE_OUT, WORK, FlowFailed, cfg, check,
                     check_probe, check_virtual_vram, describe, get, probe_doc, residencies, run_prompt,
                     same_weights)
from workflows import UNET, mg, probe, unet_distorch2


def _remember_pid(pid):
    """run_real.sh's cleanup kills these too (when their command line names $WORK)."""
    with open(os.path.join(WORK, "extra.pids"), "a") as f:
        f.write(f"{pid}\n")


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Instance:
    """Another ComfyUI on the same base directory (its own user and temp directories,
    an in-memory database) with its own distorch environment."""

    def __init__(self, name, port_number, env):
        check(bool(COMFY_DIR and COMFY_FLAGS and WORK), "run_real.sh passed how to start another ComfyUI "
              "(DISTORCH_REAL_COMFYUI_DIR/_COMFY_FLAGS; a ComfyUI with --base-directory)")
        self.dir = os.path.join(WORK, name)
        for d in ("user", "temp"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        self.log = os.path.join(self.dir, "comfyui.log")
        self.url = f"http://127.0.0.1:{port_number}"
        command = [COMFY_PYTHON, "main.py", *COMFY_FLAGS, "--listen", "127.0.0.1", "--port", str(port_number),
                   "--user-directory", os.path.join(self.dir, "user"),
                   "--temp-directory", os.path.join(self.dir, "temp"), "--database-url", "sqlite:///:memory:"]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(command, cwd=COMFY_DIR, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env={**os.environ, **env})
        _remember_pid(self.proc.pid)
        print(f"  started ComfyUI '{name}' (pid {self.proc.pid}) on {self.url}; log {self.log}")

    def wait_ready(self, timeout=600):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise FlowFailed(f"ComfyUI exited with {self.proc.returncode} while starting:\n{self.tail()}")
            try:
                get("/system_stats", self.url)
                print(f"  ComfyUI answers after {time.time() - t0:.1f} s")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise FlowFailed(f"ComfyUI did not answer within {timeout} s:\n{self.tail()}")

    def lines(self, needle):
        with open(self.log, errors="replace") as f:
            return [line.rstrip() for line in f if needle in line]

    def tail(self, n=3000):
        with open(self.log, errors="replace") as f:
            return f.read()[-n:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return not open(f"/proc/{pid}/stat").read().split(") ")[-1].startswith("Z")
    except OSError:
        return False


def flow_autostart():
    """No daemon when ComfyUI starts (DISTORCH_SOCKET names a socket nothing serves,
    auto-start on, DISTORCH_DAEMON_BIN/_ARGS/_IDLE_EXIT_S set): ComfyUI starts one and
    logs where, a MultiGPU prompt loads through it, the daemon outlives ComfyUI; then the
    flow stops exactly that daemon (its pid from the log, checked against its command
    line) and removes its directory."""
    import re
    import shutil
    run_dir = os.path.join(WORK, "autostart", "run")
    sock_a = os.path.join(run_dir, "distorchd.sock")
    check(not os.path.exists(sock_a), f"no daemon at {sock_a} before ComfyUI starts")
    inst = Instance("autostart", int(cfg.port) + 1, {
        "DISTORCH_SOCKET": sock_a, "DISTORCH_AUTOSTART": "1", "DISTORCH_DAEMON_BIN": DAEMON_BIN,
        "DISTORCH_DAEMON_ARGS": f"--config {WORK}/distorchd.toml --devices sim:0=4GiB,sim:1=4GiB",
        "DISTORCH_IDLE_EXIT_S": "600"})
    daemon_pid = None
    try:
        inst.wait_ready()
        started = inst.lines("distorch: started distorchd")
        print("\n".join("  log: " + line.split("distorch: ", 1)[-1] for line in started))
        check(len(started) == 1, "ComfyUI logged that it started one distorchd")
        hit = re.search(r"started distorchd (\S+) \(pid (\d+)\) for this user at (\S+); (.*); log: (\S+)", started[0])
        check(hit is not None, "the line names the binary, pid, socket and log")
        daemon_pid = int(hit.group(2))
        check(hit.group(3) == sock_a and os.path.exists(hit.group(5)),
              f"at the configured socket, with its log next to it ({hit.group(5)})")
        check("exits after 600 s" in hit.group(4), "the idle exit it was given (600 s)")
        check(sock_a in _cmdline(daemon_pid) and "--idle-exit-s" in _cmdline(daemon_pid),
              f"pid {daemon_pid} is distorchd on that socket ({_cmdline(daemon_pid)[:200]})")
        _remember_pid(daemon_pid)
        check(bool(inst.lines("connected to distorchd")), "ComfyUI connected to it")
        run_prompt({"1": unet_distorch2(virtual_vram_gb=0.05, donor_device="sim:1"),
                    "2": probe("mg_autostart", ["1", 0], digest=False)}, "UNETLoaderDisTorch2MultiGPU",
                   url=inst.url)
        found = residencies(UNET, socket_path=sock_a)
        for m in found:
            print("  daemon (auto-started):", describe(m))
        check(len(found) == 1, "the UNet resident in the auto-started daemon")
        check_virtual_vram(found[0], "sim:0", 0.05, ["sim:1"], "UNet")
        check_probe("mg_autostart", "model", "sim:0", {"sim:0", "sim:1"}, "UNet", res=found[0])
        inst.stop()
        check(_pid_alive(daemon_pid) and os.path.exists(sock_a), "the daemon outlives the ComfyUI that started it")
        subprocess.run(cfg.ctl + ["--socket", sock_a, "status"], capture_output=True, check=True, timeout=30)
    finally:
        inst.stop()
        if daemon_pid and sock_a in _cmdline(daemon_pid):
            os.kill(daemon_pid, 15)
            deadline = time.time() + 30
            while _pid_alive(daemon_pid) and time.time() < deadline:
                time.sleep(0.1)
            if _pid_alive(daemon_pid):
                os.kill(daemon_pid, 9)
            print(f"  stopped the auto-started distorchd (pid {daemon_pid})")
        shutil.rmtree(os.path.join(WORK, "autostart", "run"), ignore_errors=True)


def flow_no_drop():
    """Auto-start off and no daemon: a DisTorch2 node with an allocation fails the
    prompt with an error naming the socket (never a stock load that ignores the
    allocation); a device-only node loads the stock way; one warning in the log."""
    import shutil
    sock_n = os.path.join(WORK, "no_drop", "none", "distorchd.sock")
    inst = Instance("no_drop", int(cfg.port) + 2, {"DISTORCH_SOCKET": sock_n, "DISTORCH_AUTOSTART": "0"})
    try:
        inst.wait_ready()
        # Without a daemon the device combos are torch's devices: cpu here (--cpu).
        error = run_prompt({"1": unet_distorch2(compute_device="cpu", expert_mode_allocations="cuda:0,2gb;cpu,*"),
                            "2": probe("mg_no_drop", ["1", 0], digest=False)},
                           "UNETLoaderDisTorch2MultiGPU with an allocation", url=inst.url, expect_error=True)
        message = error.get("exception_message", "")
        check(sock_n in message and "asks for the allocation 'cuda:0,2gb;cpu,*'" in message
              and "not loaded the stock way" in message and "auto-start is off" in message,
              "the error names the allocation, the socket, and that auto-start is off")
        run_prompt({"1": mg("UNETLoaderMultiGPU", unet_name=UNET, weight_dtype="default", device="cpu"),
                    "2": probe("mg_no_drop_stock", ["1", 0])}, "UNETLoaderMultiGPU (no allocation)", url=inst.url)
        pl = probe_doc("mg_no_drop_stock")["placement"]["model"]
        check(not pl["broker"] and pl["load_device"] == "cpu", "loaded the stock way, on cpu")
        if os.path.exists(os.path.join(PROBE_OUT, "mg_stock_unet.json")):
            same_weights("mg_no_drop_stock", "mg_stock_unet", "the stock load equals stock UNETLoader's")
        warnings = inst.lines("distorchd is not running")
        print("\n".join("  log: " + line.split("distorch: ", 1)[-1][:400] for line in warnings))
        check(len(warnings) == 1 and sock_n in warnings[0], "one warning, naming the socket")
        check(not os.path.exists(sock_n), "no daemon was started")
    finally:
        inst.stop()
        shutil.rmtree(os.path.join(WORK, "no_drop", "none"), ignore_errors=True)
