"""Runs inside the qemu guest as part of its init: plays the guest agent and the operator.

For each scenario of /vmsnap-test/plan.json it starts the writer workload, runs the extension's
manifest commands exactly as the Linux guest agent does (`/bin/sh -c <handler dir>/<command>`, cwd the
handler directory, the agent's environment variables, config/<seq>.settings written by "the agent"),
waits for the terminal status, then checks that `/` is writable and the writer's data intact. In the
"kill" scenario it SIGKILLs the worker (pid from job.json) the moment the writer is seen blocked on the
frozen root, and measures how long until `/` takes writes again.

Results go to the serial console, one line per scenario: `VMSNAP_RESULT <json>`. Everything is
imported up front and nothing here writes to `/` while it may be frozen (notes live on tmpfs).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from writer import verify as verify_records

PLAN = "/vmsnap-test/plan.json"
CONTROL = "/run/vmsnap-writer"
HOOK_LOG = "/run/vmsnap-hook.log"  # written by the sample hook (hook-writer)
FROZEN_WCHAN = "percpu_rwsem_wait"  # where a writer sleeps on a frozen superblock (sb_start_write)


def say(kind, doc):
    sys.stdout.write("VMSNAP_%s %s\n" % (kind, json.dumps(doc, sort_keys=True)))
    sys.stdout.flush()


def uptime():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def network_up(address):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    names = [n for n in sorted(os.listdir("/sys/class/net")) if n != "lo"]
    for name in names:
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
        subprocess.run(["ip", "addr", "add", address, "dev", name], check=True)
    return names


class Agent(object):
    """The guest agent's part: settings files, environment, and `/bin/sh -c` of manifest commands."""

    def __init__(self, plan):
        self.base = plan["handler_dir"]
        self.env = dict(plan["agent_env"])
        self.settings_src = plan["settings_dir"]
        with open(os.path.join(self.base, "HandlerManifest.json")) as f:
            self.manifest = json.load(f)[0]["handlerManifest"]

    def deliver_settings(self, seq):
        dst = os.path.join(self.base, "config", "%d.settings" % seq)
        shutil.copyfile(os.path.join(self.settings_src, "%d.settings" % seq), dst)
        os.chmod(dst, 0o600)

    def run(self, command, seq, timeout=60):
        cmd = os.path.join(self.base, self.manifest["%sCommand" % command].lstrip("/"))
        env = dict(self.env, ConfigSequenceNumber=str(seq))
        t = time.monotonic()
        p = subprocess.run(
            ["/bin/sh", "-c", cmd],
            cwd=self.base,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            start_new_session=True,
        )
        return {
            "rc": p.returncode,
            "seconds": round(time.monotonic() - t, 3),
            "output": p.stdout.decode("utf-8", "replace")[-2000:],
        }

    def status(self, seq):
        try:
            with open(os.path.join(self.base, "status", "%d.status" % seq)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def job(self):
        try:
            with open(os.path.join(self.base, "job.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError, TypeError):
        return False


def wchan(pid):
    try:
        with open("/proc/%d/wchan" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


class WorkerWatch(object):
    """Tells a job that died (no job.json, or neither its supervisor nor its worker alive for 2 s) from
    one still starting up."""

    def __init__(self, grace_s=2.0):
        self.grace_s = grace_s
        self.since = None

    def gone(self, job):
        if job is not None and (pid_alive(job.get("pid")) or pid_alive(job.get("supervisor"))):
            self.since = None
            return False
        self.since = self.since or time.monotonic()
        return time.monotonic() - self.since > self.grace_s


def wait_terminal(agent, seq, timeout):
    """The terminal status, or the last one seen when the worker died or the time ran out."""
    deadline = time.monotonic() + timeout
    doc, watch = None, WorkerWatch()
    while time.monotonic() < deadline:
        doc = agent.status(seq)
        if doc and doc[0]["status"]["status"] in ("success", "error"):
            return doc, "terminal"
        if watch.gone(agent.job()):
            return doc, "worker gone without a terminal status"
        time.sleep(0.05)
    return doc, "timed out after %ds" % timeout


def timed_write(path, box):
    t = time.monotonic()
    with open(path, "w") as f:
        f.write("probe %f\n" % t)
        f.flush()
        os.fsync(f.fileno())
    box["done"] = time.monotonic()


def root_writable(timeout=5.0):
    """Write, fsync and read back a file on `/`, bounded: a frozen root shows as a timeout."""
    path = "/var/tmp/vmsnap-probe"
    box = {}
    t = time.monotonic()
    th = threading.Thread(target=timed_write, args=(path, box), daemon=True)
    th.start()
    th.join(timeout)
    if "done" not in box:
        return {"writable": False, "ms": None}
    with open(path) as f:
        ok = f.read().startswith("probe ")
    os.remove(path)
    mount_rw = any(
        line.split()[1] == "/" and "rw" in line.split()[3].split(",")
        for line in open("/proc/mounts")
        if len(line.split()) > 3
    )
    return {"writable": ok and mount_rw, "ms": round((box["done"] - t) * 1000, 1)}


class Workload(object):
    def __init__(self, plan):
        self.dir = plan["data_dir"]
        self.path = os.path.join(self.dir, "data.log")
        self.proc = None

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        if os.path.exists(self.path):
            os.remove(self.path)
        self.proc = subprocess.Popen(
            [sys.executable, "-B", "/vmsnap-test/writer.py", self.path, CONTROL], stdout=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(CONTROL, "writer.pid")) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # a baseline of normal gaps before the job

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        os.remove(os.path.join(CONTROL, "writer.pid"))
        return json.loads(out.decode().strip().splitlines()[-1])

    def verify(self, records):
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")  # re-read from the disk, not from the page cache
        return verify_records(self.path, records)


def extension_log_tail(log_dir, lines=30):
    out = []
    for dirpath, _, files in os.walk(log_dir):
        for name in sorted(files):
            if name.endswith(".log"):
                with open(os.path.join(dirpath, name), errors="replace") as f:
                    out.extend(f.read().splitlines()[-lines:])
    return out[-lines:]


def hook_log():
    try:
        with open(HOOK_LOG) as f:
            return f.read().split("\n")[:-1]
    except OSError:
        return []


def set_hook(plan, enabled):
    dst = os.path.join(plan["hook_dir"], "10-quiesce-writer")
    if enabled:
        os.makedirs(plan["hook_dir"], exist_ok=True)
        shutil.copyfile("/vmsnap-test/hook-writer", dst)
        os.chmod(dst, 0o755)
    elif os.path.exists(dst):
        os.remove(dst)


def kill_when_frozen(agent, writer_pid, timeout):
    """SIGKILL the worker once the writer sleeps on the frozen root. Returns what was seen."""
    deadline = time.monotonic() + timeout
    job, watch = None, WorkerWatch()
    while time.monotonic() < deadline:
        job = agent.job()
        if job and job.get("guardian_pid"):
            break
        if watch.gone(job):
            return {"killed": False, "why": "the worker ended before it started a guardian", "job": job}
        time.sleep(0.005)
    else:
        return {"killed": False, "why": "no guardian recorded in job.json", "job": job}
    worker = job["pid"]
    while time.monotonic() < deadline and pid_alive(worker):
        if wchan(writer_pid) == FROZEN_WCHAN:
            t_kill = time.monotonic()
            os.kill(worker, signal.SIGKILL)
            box = {}
            th = threading.Thread(target=timed_write, args=("/var/tmp/vmsnap-kill-probe", box), daemon=True)
            th.start()
            th.join(5.0)
            guardian_exit = None
            g_deadline = time.monotonic() + 5
            while pid_alive(job["guardian_pid"]) and time.monotonic() < g_deadline:
                time.sleep(0.002)
            if not pid_alive(job["guardian_pid"]):
                guardian_exit = time.monotonic()
            return {
                "killed": True,
                "tKill": round(t_kill, 4),
                "workerPid": worker,
                "guardianPid": job["guardian_pid"],
                "writableAfterKillMs": round((box["done"] - t_kill) * 1000, 1) if "done" in box else None,
                "guardianGoneMs": round((guardian_exit - t_kill) * 1000, 1) if guardian_exit else None,
                "writerWchanAfter": wchan(writer_pid),
            }
        time.sleep(0.001)
    return {"killed": False, "why": "the writer was never seen blocked on a frozen root", "job": job}


def run_agent_job(plan, agent, sc, workload):
    """The zip route: the agent delivers the settings and calls install (first time) and enable."""
    result = {}
    agent.deliver_settings(sc["seq"])
    if sc.get("install"):
        result["install"] = agent.run("install", sc["seq"])
        set_hook(plan, sc.get("hook", False))  # after install created the hook directory
    t = time.monotonic()
    result["enable"] = agent.run("enable", sc["seq"])
    if sc.get("kill"):
        result["kill"] = kill_when_frozen(agent, workload.proc.pid, plan["status_timeout"])
    result["status"], result["wait"] = wait_terminal(agent, sc["seq"], plan["status_timeout"])
    if sc.get("kill"):
        result["enableAgain"] = agent.run("enable", sc["seq"])  # the agent restarts and re-runs enable
        result["statusAfterEnableAgain"] = agent.status(sc["seq"])
    result["jobSeconds"] = round(time.monotonic() - t, 3)
    result["extensionLog"] = extension_log_tail(plan["log_dir"])
    return result


def run_command(cmd, env, timeout=180, keep=4000):
    """Run a command; its output is kept to the last `keep` characters (None: all of it)."""
    t = time.monotonic()
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return {
        "rc": p.returncode,
        "seconds": round(time.monotonic() - t, 3),
        "stdout": p.stdout.decode("utf-8", "replace")[-keep if keep else None :],
        "stderr": p.stderr.decode("utf-8", "replace")[-2000:],
    }


def run_packaged_job(plan, sc):
    """The package route: dpkg -i our DEB on the running VM, check its freeze plan with `vmsnapshot
    diagnose`, then run one job in the foreground with `vmsnapshot snapshot` (clear-text settings, 0600)."""
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "SSL_CERT_FILE": plan["agent_env"]["SSL_CERT_FILE"],
    }
    # --force-confold: the VM already has its /etc/azure/vmbackup.conf (this test's), which must win.
    result = {"dpkg": run_command(["dpkg", "-i", "--force-confold", sc["deb"]], env)}
    result["version"] = run_command(["vmsnapshot", "version"], env)
    diag = run_command(["vmsnapshot", "diagnose", "--json", "--offline"], env, keep=None)
    try:
        result["freezeOrder"] = json.loads(diag["stdout"])["freeze_plan"]["freeze_order"]
    except (ValueError, KeyError, TypeError):
        result["diagnose"] = dict(diag, stdout=diag["stdout"][-4000:])
    job_dir = os.path.dirname(sc["job_settings"])
    os.makedirs(job_dir, mode=0o700, exist_ok=True)
    settings = os.path.join(job_dir, "job.json")
    shutil.copyfile(sc["settings"], settings)
    os.chmod(settings, 0o600)
    t = time.monotonic()
    result["snapshot"] = run_command(
        ["vmsnapshot", "snapshot", "--settings", settings, "--seq", str(sc["seq"])], env, timeout=plan["status_timeout"]
    )
    result["jobSeconds"] = round(time.monotonic() - t, 3)
    try:
        with open(os.path.join(job_dir, "status", "%d.status" % sc["seq"])) as f:
            result["status"] = json.load(f)
    except (OSError, ValueError) as e:
        result["status"] = None
        result["statusError"] = str(e)
    result["extensionLog"] = extension_log_tail(os.path.join(job_dir, "logs"))
    return result


def run_scenario(plan, agent, sc):
    result = {"name": sc["name"], "seq": sc["seq"], "uptimeStart": uptime()}
    if os.path.exists(HOOK_LOG):
        os.remove(HOOK_LOG)  # each scenario reports only its own hook calls
    set_hook(plan, sc.get("hook", False))
    workload = Workload(plan)
    workload.start()
    if sc.get("deb"):
        result.update(run_packaged_job(plan, sc))
    else:
        result.update(run_agent_job(plan, agent, sc, workload))
    result["rootAfter"] = root_writable()
    result["writer"] = workload.stop()
    result["data"] = workload.verify(result["writer"]["records"])
    result["hookLog"] = hook_log()
    result["uptimeEnd"] = uptime()
    return result


def main():
    with open(PLAN) as f:
        plan = json.load(f)
    os.makedirs(CONTROL, exist_ok=True)
    say(
        "INIT",
        {
            "uptime": uptime(),
            "monotonic": time.monotonic(),
            "wallclock": time.time(),
            "python": sys.version.split()[0],
            "interfaces": network_up(plan["guest_address"]),
        },
    )
    agent = Agent(plan)
    for sc in plan["scenarios"]:
        try:
            say("RESULT", run_scenario(plan, agent, sc))
        except Exception as e:  # report and go on: the host asserts on what is missing
            say(
                "RESULT",
                {
                    "name": sc["name"],
                    "error": "%s: %s" % (type(e).__name__, e),
                    "extensionLog": extension_log_tail(plan["log_dir"]),
                },
            )
    say("DONE", {"uptime": uptime()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
