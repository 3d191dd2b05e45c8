"""A minimal Jupyter frontend for tests of widgets in a live kernel, that cannot hang a test.

:func:`drive` (the test's side) runs this module as a process in a session of its own and
waits at most ``timeout`` seconds; past that it kills the whole process group — this
frontend and its kernel — and says where it stopped. The frontend (:func:`main`, the
process' side) starts an IPython kernel *in its own process group* (jupyter_client's
launcher would give the kernel a session of its own, which a kill of the group would
miss), and puts a deadline on every wait for the kernel.

What it does is what JupyterLab does for a user: run the plan's setup code; for each
choice, send the Dropdown described so a comm ``update`` with the chosen option's index
(as the page does when a user picks it); and keep every Output widget's outputs as the
page would show them (a kernel sends a captured output to the frontend under the request
the widget's ``msg_id`` names; the frontend redirects it into the widget). After the
setup and after each choice it records the Output widgets' outputs and the value of the
plan's ``probe`` expression, evaluated in the kernel.

Plan (JSON): {"setup": code, "choices": [[dropdown description, option label], ...],
"probe": expression, "step_timeout": seconds}. Result (JSON): {"steps": [{"after":
"setup" or "network B = n2", "outputs": {output comm id: [nbformat outputs]}, "probe":
its text/plain}, ...]}.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CAPTURED = {"display_data", "execute_result", "stream", "error"}


class FrontendTimeout(RuntimeError):
    """The kernel did not answer within a step's deadline."""


def drive(plan: dict[str, Any], folder: Path, timeout: float) -> dict[str, Any]:
    """Run ``plan`` in a fresh kernel through this module as a separate process; return its
    result. Files (the plan, the result, the kernel's connection file, IPython's folder,
    both processes' logs) go under ``folder``. Raises AssertionError — a failure, never a
    skip — when the frontend fails, or when it has not finished after ``timeout`` seconds
    (then its process group, the kernel included, is killed first)."""
    folder.mkdir(parents=True, exist_ok=True)
    plan_path, result_path, log_path = folder / "plan.json", folder / "result.json", folder / "frontend.log"
    plan_path.write_text(json.dumps(plan))
    env = {k: v for k, v in os.environ.items() if k != "PARADOX_BATCH"}  # a live frontend: widgets, not a sentence
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))  # this checkout's package
    env["IPYTHONDIR"] = str(folder / "ipython")  # IPython's profile and history stay under the test's folder
    started = time.monotonic()
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "tests.kernel_frontend", str(plan_path), str(result_path)],
                                   cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # its own process group: one kill reaches the kernel too
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process.pid)
            process.wait()
            raise AssertionError(f"The live-kernel frontend did not finish within {timeout:.0f} s: its process group "
                                 f"(frontend and kernel) was killed. Its log, last lines:\n{_tail(log_path)}") from None
        finally:
            _kill_group(process.pid)  # a kernel its frontend failed to stop
    if code != 0:
        raise AssertionError(f"The live-kernel frontend failed (exit {code}) after "
                             f"{time.monotonic() - started:.0f} s. Its log, last lines:\n{_tail(log_path)}")
    return json.loads(result_path.read_text())


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # the group is gone already
        pass


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class Frontend:
    """One kernel (started in this process' group) and what a page would show of its widgets."""

    def __init__(self, folder: Path, step_timeout: float):
        from jupyter_client import BlockingKernelClient
        from jupyter_client.connect import write_connection_file

        self.step_timeout = step_timeout
        connection, _ = write_connection_file(str(folder / "kernel.json"), ip="127.0.0.1")
        self.kernel_log = open(folder / "kernel.log", "w")  # noqa: SIM115 (closed in close())
        self.kernel = subprocess.Popen([sys.executable, "-m", "ipykernel_launcher", "-f", connection],
                                       stdin=subprocess.DEVNULL, stdout=self.kernel_log, stderr=subprocess.STDOUT)
        self.client = BlockingKernelClient(connection_file=connection)
        self.client.load_connection_file()
        # no heartbeat: jupyter_client's wait_for_ready reads a kernel slower than 1 s to start (a busy
        # machine) as dead; whether it lives is the Popen's to say
        self.client.start_channels(hb=False)
        self.widgets: dict[str, dict[str, Any]] = {}  # comm id → the widget's state, as the page keeps it
        self.outputs: dict[str, list[dict]] = {}  # Output widget comm id → its outputs
        self.clear_before_next: set[str] = set()  # Output widgets with a pending clear_output(wait=True)
        self._wait_for_ready()

    def _wait_for_ready(self) -> None:
        """Ask for kernel_info until the kernel answers on the shell channel and its idle
        status arrives on iopub (subscribed only then: no output of the plan is missed),
        within a step's deadline."""
        deadline = time.monotonic() + self.step_timeout
        while time.monotonic() < deadline:
            if self.kernel.poll() is not None:
                raise RuntimeError(f"The kernel exited (code {self.kernel.returncode}) before it was ready.")
            msg_id = self.client.kernel_info()
            try:
                self._shell_reply(msg_id, "kernel_info", timeout=2.0)
                self._until_idle(msg_id, "kernel_info", timeout=2.0)
            except FrontendTimeout:
                continue
            return
        raise FrontendTimeout(f"The kernel was not ready within {self.step_timeout:.0f} s.")

    def run(self, code: str, what: str) -> str:
        """Execute ``code``; its execute_result's text/plain ("" if none). Raises on an error."""
        msg_id = self.client.execute(code, store_history=False)
        result = self._until_idle(msg_id, what)
        reply = self._shell_reply(msg_id, what)
        if reply["content"]["status"] != "ok":
            content = reply["content"]
            raise RuntimeError(f"{what} failed in the kernel: {content.get('ename')}: {content.get('evalue')}\n"
                               + "\n".join(content.get("traceback", [])))
        return result

    def choose(self, description: str, label: str) -> None:
        """Pick ``label`` in the Dropdown whose description is ``description``, as the page does
        when a user picks it: a comm update of the widget's ``index``."""
        dropdowns = {cid: s for cid, s in self.widgets.items()
                     if s.get("_model_name") == "DropdownModel" and s.get("description") == description}
        if len(dropdowns) != 1:
            raise RuntimeError(f"Expected one Dropdown {description!r}; the kernel opened {len(dropdowns)}.")
        (comm_id, state), = dropdowns.items()
        message = self.client.session.msg("comm_msg", {"comm_id": comm_id, "data": {
            "method": "update", "state": {"index": state["_options_labels"].index(label)}, "buffer_paths": []}})
        self.client.shell_channel.send(message)
        self._until_idle(message["header"]["msg_id"], f"choosing {label} in {description}")

    def _until_idle(self, msg_id: str, what: str, timeout: float | None = None) -> str:
        """Handle iopub messages until the kernel is idle after request ``msg_id``, within
        ``timeout`` seconds (default a step's); the request's execute_result text/plain ("" if none)."""
        timeout = self.step_timeout if timeout is None else timeout
        deadline, result = time.monotonic() + timeout, ""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FrontendTimeout(f"The kernel did not finish {what} within {timeout:.0f} s.")
            try:
                message = self.client.get_iopub_msg(timeout=min(left, 5.0))
            except queue.Empty:
                if self.kernel.poll() is not None:
                    raise RuntimeError(f"The kernel died (exit {self.kernel.returncode}) during {what}.") from None
                continue
            self._show(message)
            parent = message["parent_header"].get("msg_id")
            if parent == msg_id and message["msg_type"] == "execute_result":
                result = message["content"]["data"].get("text/plain", "")
            if parent == msg_id and message["msg_type"] == "status" and \
                    message["content"]["execution_state"] == "idle":
                return result

    def _shell_reply(self, msg_id: str, what: str, timeout: float | None = None) -> dict:
        """The kernel's reply to request ``msg_id`` (others are dropped), within ``timeout``
        seconds (default a step's)."""
        timeout = self.step_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                reply = self.client.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply
        raise FrontendTimeout(f"No reply from the kernel to {what} within {timeout:.0f} s.")

    def _show(self, message: dict) -> None:
        """What a page does with one iopub message: widget state, and outputs redirected
        into the Output widget capturing them (JupyterLab's output widget manager)."""
        kind, content = message["msg_type"], message["content"]
        if kind == "comm_open":
            state = dict(content.get("data", {}).get("state", {}))
            self.widgets[content["comm_id"]] = state
            if state.get("_model_name") == "OutputModel":
                self.outputs[content["comm_id"]] = []
        elif kind == "comm_msg" and content["comm_id"] in self.widgets:
            data = content.get("data", {})
            if data.get("method") in ("update", "echo_update"):
                self.widgets[content["comm_id"]].update(data.get("state", {}))
        elif kind == "clear_output" or kind in CAPTURED:
            parent = message["parent_header"].get("msg_id")
            for comm_id in [c for c in self.outputs if parent and self.widgets[c].get("msg_id") == parent]:
                if kind == "clear_output":
                    if content.get("wait"):
                        self.clear_before_next.add(comm_id)
                    else:
                        self.outputs[comm_id] = []
                    continue
                if comm_id in self.clear_before_next:
                    self.clear_before_next.discard(comm_id)
                    self.outputs[comm_id] = []
                self.outputs[comm_id].append({"output_type": kind, **{k: content[k] for k in (
                    "data", "text", "name", "ename", "evalue") if k in content}})

    def snapshot(self, after: str, probe: str) -> dict[str, Any]:
        return {"after": after, "outputs": json.loads(json.dumps(self.outputs)),
                "probe": self.run(probe, f"the probe after {after}")}

    def close(self) -> None:
        """Stop the kernel at once (nothing of it is worth a graceful shutdown here)."""
        try:
            self.client.stop_channels()
        finally:
            self.kernel.kill()
            self.kernel.wait(timeout=30)
            self.kernel_log.close()


def main(plan_path: str, result_path: str) -> None:
    plan = json.loads(Path(plan_path).read_text())
    folder = Path(result_path).parent
    started = time.monotonic()

    def say(text: str) -> None:  # the log drive() shows when something goes wrong
        print(f"[{time.monotonic() - started:6.1f} s] {text}", flush=True)

    frontend = Frontend(folder, float(plan.get("step_timeout", 60)))
    try:
        say("kernel ready")
        frontend.run(plan["setup"], "the setup code")
        steps = [frontend.snapshot("setup", plan["probe"])]
        say("setup ran")
        for description, label in plan["choices"]:
            frontend.choose(description, label)
            steps.append(frontend.snapshot(f"{description} = {label}", plan["probe"]))
            say(f"chose {label} in {description}")
    finally:
        frontend.close()
    Path(result_path).write_text(json.dumps({"steps": steps}))
    say("done")


if __name__ == "__main__":
    main(*sys.argv[1:])
