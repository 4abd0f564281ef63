#!/usr/bin/env python3
"""Helpers of tools/crash_test.sh (docs/reliability.md, "Crash test"): the seeded SIGKILL campaign against a
semaim pretraining run, and the checks the SIGTERM and full-disk phases share with it (bitwise tensors,
metrics.jsonl, leftover files). Standard library only.

  crash_util.py kills --run-dir D --ref-dir R --kills N --seed S --steps T ... -- CMD...   the SIGKILL campaign
  crash_util.py same-tensors A B        tensor-by-tensor equality of two safetensors files (names, dtype, bytes)
  crash_util.py metrics RUN [--steps T] [--ref REF] [--max-step N]   metrics.jsonl: each step once, losses
  crash_util.py leftovers RUN           temp files, weights/state without manifest, truncated checkpoint files
  crash_util.py wait-step RUN STEP --pid P [--timeout S]   wait until metrics.jsonl logs STEP (or P ends)
"""
import argparse
import ctypes
import hashlib
import json
import math
import os
import random
import re
import select
import signal
import struct
import subprocess
import sys
import time

CKPT_FILE = re.compile(r"^step-(\d+)\.(weights\.safetensors|state\.safetensors|json)$")
# The atomic writer's temp sibling: <target>.tmp.<pid>.<counter>.<random> (src/io/atomic_file.cpp).
TEMP_FILE = re.compile(r"^(?P<target>.+)\.tmp\.(?P<pid>\d+)\.\d+\.\d+$")
CKPT_TEMP = re.compile(r"^step-(?P<step>\d+)\.(?P<kind>weights|state|json)[.a-z]*\.tmp\.(?P<pid>\d+)\.")
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
               "BOOL": 1}


# ---- safetensors ----

def read_safetensors(path):
    """Returns (header dict without __metadata__, data bytes); raises ValueError when the file is truncated."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack_from("<Q", raw, 0)
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header runs past the end of the file")
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    data = raw[8 + n:]
    for name, t in header.items():
        begin, end = t["data_offsets"]
        if end > len(data) or end - begin != math.prod(t["shape"]) * DTYPE_BYTES.get(t["dtype"], 0):
            raise ValueError(f"{path}: tensor {name} lies outside the file or has the wrong byte size")
    return header, data


def tensor_digests(path):
    """{name: (dtype, shape, sha256 of the bytes)} of every tensor of a safetensors file."""
    header, data = read_safetensors(path)
    out = {}
    for name, t in header.items():
        begin, end = t["data_offsets"]
        out[name] = (t["dtype"], tuple(t["shape"]), hashlib.sha256(data[begin:end]).hexdigest())
    return out


def compare_tensors(a, b):
    """(equal, message): same names, dtypes, shapes and bytes (the metadata, e.g. run.name, may differ)."""
    da, db = tensor_digests(a), tensor_digests(b)
    if da.keys() != db.keys():
        return False, f"different tensor names: only in {a}: {sorted(da.keys() - db.keys())[:5]}, " \
                      f"only in {b}: {sorted(db.keys() - da.keys())[:5]}"
    differ = [k for k in sorted(da) if da[k] != db[k]]
    if differ:
        return False, f"{len(differ)} of {len(da)} tensors differ, first: {differ[:5]}"
    whole = hashlib.sha256("".join(da[k][2] for k in sorted(da)).encode()).hexdigest()
    return True, f"{len(da)} tensors bitwise equal (sha256 of all tensor data {whole[:16]})"


# ---- run directory ----

def read_metrics(run_dir):
    """(records with a 'step', number of lines that are not JSON objects)."""
    path = os.path.join(run_dir, "metrics.jsonl")
    records, torn = [], 0
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return records, 0
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            torn += 1
            continue
        if isinstance(rec, dict) and "step" in rec:
            records.append(rec)
        else:
            torn += 1
    return records, torn


def max_logged_step(run_dir):
    records, _ = read_metrics(run_dir)
    return max((r["step"] for r in records), default=0)


def check_metrics(run_dir, steps=None, ref_dir=None, max_step=None):
    """Problems of metrics.jsonl: duplicate steps, unparsable lines, missing steps, losses unlike the reference."""
    records, torn = read_metrics(run_dir)
    problems = []
    seen = [r["step"] for r in records if "loss" in r]
    dups = sorted({s for s in seen if seen.count(s) > 1})
    if dups:
        problems.append(f"metrics.jsonl logs steps {dups[:10]} more than once ({len(seen)} records)")
    if torn:
        problems.append(f"metrics.jsonl has {torn} line(s) that are not JSON records")
    if steps is not None and sorted(set(seen)) != list(range(1, steps + 1)):
        missing = sorted(set(range(1, steps + 1)) - set(seen))
        problems.append(f"metrics.jsonl does not log steps 1..{steps} (missing {missing[:10]})")
    if max_step is not None and max(seen, default=0) != max_step:
        problems.append(f"metrics.jsonl ends at step {max(seen, default=0)}, expected {max_step}")
    if ref_dir is not None:
        ref = {r["step"]: r["loss"] for r in read_metrics(ref_dir)[0] if "loss" in r}
        off = [r["step"] for r in records if "loss" in r and ref.get(r["step"]) != r["loss"]]
        if off:
            problems.append(f"the loss of steps {off[:10]} differs from the uninterrupted run's")
    return problems


def complete_steps(ckpt_dir):
    """Steps whose manifest, weights and state all exist (CheckpointManager::complete)."""
    try:
        names = set(os.listdir(ckpt_dir))
    except FileNotFoundError:
        return []
    steps = []
    for n in names:
        m = CKPT_FILE.match(n)
        if m and m.group(2) == "json":
            stem = n[:-len(".json")]
            if stem + ".weights.safetensors" in names and stem + ".state.safetensors" in names:
                steps.append(int(m.group(1)))
    return sorted(steps)


def leftovers(run_dir):
    """Paths an interrupted save leaves: temp files anywhere in the run directory, and checkpoints/ weights or
    state files without their manifest."""
    out = []
    for root, _, files in os.walk(run_dir):
        out += [os.path.join(root, f) for f in files if TEMP_FILE.match(f)]
    ck = os.path.join(run_dir, "checkpoints")
    names = set(os.listdir(ck)) if os.path.isdir(ck) else set()
    for n in names:
        m = CKPT_FILE.match(n)
        if m and m.group(2) != "json" and "step-%s.json" % m.group(1) not in names:
            out.append(os.path.join(ck, n))
    return sorted(out)


def broken_checkpoints(run_dir):
    """Complete checkpoints whose weights or state file is truncated (a half-written file under a final name)."""
    ck = os.path.join(run_dir, "checkpoints")
    bad = []
    for s in complete_steps(ck):
        for kind in ("weights", "state"):
            path = os.path.join(ck, "step-%08d.%s.safetensors" % (s, kind))
            try:
                read_safetensors(path)
            except (ValueError, KeyError, json.JSONDecodeError) as e:
                bad.append(str(e))
    return bad


# ---- watching a run ----

class DirWatch:
    """New names in a directory: inotify through libc when the kernel allows it, else polling. The directory may
    not exist yet (a fresh run creates it); files already there when the watch starts count as new once."""

    IN_CREATE, IN_MOVED_TO = 0x100, 0x80

    def __init__(self, path):
        self.path, self.fd, self.seen = path, -1, set()
        self.libc = None
        try:
            self.libc = ctypes.CDLL(None, use_errno=True)
            self.libc.inotify_init1.argtypes = [ctypes.c_int]
            self.libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        except (OSError, AttributeError):
            self.libc = None

    def mode(self):
        return "inotify" if self.fd >= 0 else "polling"

    def _start(self):
        if self.fd >= 0 or not os.path.isdir(self.path) or self.libc is None:
            return
        fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            self.libc = None
            return
        if self.libc.inotify_add_watch(fd, self.path.encode(), self.IN_CREATE | self.IN_MOVED_TO) < 0:
            os.close(fd)
            self.libc = None
            return
        self.fd = fd

    def new_names(self, timeout):
        """Names that appeared since the last call, waiting up to `timeout` seconds for one."""
        self._start()
        names = []
        if self.fd >= 0:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if ready:
                buf = os.read(self.fd, 65536)
                off = 0
                while off + 16 <= len(buf):
                    _, _, _, n = struct.unpack_from("iIII", buf, off)
                    names.append(buf[off + 16:off + 16 + n].rstrip(b"\0").decode())
                    off += 16 + n
        else:
            time.sleep(min(timeout, 0.001))
        # A scan as well: the files created before the watch existed, and the polling fallback.
        try:
            names += os.listdir(self.path)
        except FileNotFoundError:
            pass
        fresh = [n for n in names if n not in self.seen]
        self.seen.update(fresh)
        return fresh

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)


def wait_for_step(run_dir, step, proc_alive, deadline):
    """Polls metrics.jsonl until it logs a step >= `step`: True; False when the run ended or time ran out."""
    path = os.path.join(run_dir, "metrics.jsonl")
    last = None
    while time.monotonic() < deadline:
        if not proc_alive():
            return False
        try:
            st = os.stat(path)
            key = (st.st_ino, st.st_size)
        except FileNotFoundError:
            key = None
        if key is not None and key != last:
            last = key
            if max_logged_step(run_dir) >= step:
                return True
        time.sleep(0.005)
    return False


def wait_for_temp(watch, pid, min_step, kind, proc_alive, deadline):
    """Waits until process `pid` creates the temp file of a checkpoint file of `kind` (weights, state, json) for
    a step >= min_step; returns its path, or None when the run ended or time ran out."""
    while time.monotonic() < deadline:
        for n in watch.new_names(0.002):
            m = CKPT_TEMP.match(n)
            if m and int(m.group("pid")) == pid and m.group("kind") == kind and int(m.group("step")) >= min_step:
                return os.path.join(watch.path, n)
        if not proc_alive():
            return None
    return None


# ---- the SIGKILL campaign ----

def make_plan(seed, kills):
    """Seeded intentions of each kill (the same draws for the same seed, so a seed replays the campaign).
    write: kill the moment the run creates the temp file of a checkpoint file (inside the atomic write);
    step: kill at a random moment of the step after a random step; early: kill while the run starts up."""
    rng = random.Random(seed)
    # Fixed shares in a seeded order, so even a short campaign aims at least one kill at a write.
    writes = max(1, round(0.45 * kills))
    early = min(round(0.1 * kills), kills - writes)
    kinds = ["write"] * writes + ["early"] * early + ["step"] * (kills - writes - early)
    rng.shuffle(kinds)
    plan = []
    for kind in kinds:
        u, d, e = rng.random(), rng.random(), rng.random()
        kind_file = rng.choice(["weights", "state", "json"])
        plan.append({"kind": kind, "u": u, "d": d, "e": e, "file": kind_file})
    return plan


def identity(path):
    """A file as it is now: a leftover 'survives' only while the same file (not a new one of that name) exists."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return path, st.st_ino, st.st_mtime_ns


class Campaign:
    def __init__(self, a):
        self.a = a
        self.ck = os.path.join(a.run_dir, "checkpoints")
        self.failures = []
        self.stats = {"seed": a.seed, "kills_planned": a.kills, "kills": 0, "in_write": 0, "between_files": 0,
                      "early": 0, "resumes": 0, "resumes_ok": 0, "watch": "", "weights_equal": False,
                      "state_equal": False, "metrics_ok": False, "leftovers_ok": False}
        self.stale = set()  # identities of leftovers of killed saves: the next run's first save removes them
        self.log_index = 0

    def fail(self, msg):
        self.failures.append(msg)
        print(f"  FAIL: {msg}", flush=True)

    def launch(self):
        self.log_index += 1
        log_path = os.path.join(self.a.log_dir, "kill-run-%02d.log" % self.log_index)
        with open(log_path, "w") as log:
            proc = subprocess.Popen(self.a.cmd, stdout=log, stderr=subprocess.STDOUT)
        return proc, log_path

    def target_of(self, i, plan):
        """The step kill i aims at: inside the i-th of `kills` equal slices of the run, and past every step the
        run logged so far (so the resumed run's progress, not the killed run's records, triggers it)."""
        slice_len = (self.a.steps - 1) / self.a.kills
        planned = 1 + int((i + plan["u"]) * slice_len)
        return min(max(planned, max_logged_step(self.a.run_dir) + 1), self.a.steps)

    def trigger(self, plan, target, proc, watch):
        """Waits for the kill's moment and sends SIGKILL: (kind, description), or None when the run ended first
        or the moment did not come within the timeout."""
        a = self.a
        deadline = time.monotonic() + a.timeout
        alive = lambda: proc.poll() is None
        kind = plan["kind"]
        if kind == "early":
            time.sleep(plan["e"] * a.startup_seconds)
            what = "early kill %.2f s after the start" % (plan["e"] * a.startup_seconds)
        elif kind == "step" and target < a.steps:
            if not wait_for_step(a.run_dir, target, alive, deadline):
                return None
            time.sleep(plan["d"] * a.step_seconds)
            what = "kill %.2f s after step %d was logged" % (plan["d"] * a.step_seconds, target)
        else:  # a write kill; a step kill aimed past the last step becomes one on the final save
            kind = "write"
            temp = wait_for_temp(watch, proc.pid, target, plan["file"], alive, deadline)
            if temp is None:
                return None
            what = "write kill on the creation of " + os.path.basename(temp)
        if proc.poll() is not None:
            return None
        os.kill(proc.pid, signal.SIGKILL)
        return kind, what

    def check_run(self, log_path, resumed_from, stale_before):
        """Checks of one run after it ended: it resumed from the newest complete checkpoint, its first save
        removed the leftovers of earlier kills, metrics.jsonl logs each step once. True when all held."""
        ok = True
        with open(log_path, errors="replace") as f:
            out = f.read()
        m = re.search(r"resumed from (\S+) at step (\d+)", out)
        if resumed_from is not None and m and int(m.group(2)) != resumed_from:
            self.fail(f"{log_path}: resumed at step {m.group(2)}, the newest checkpoint was {resumed_from}")
            ok = False
        if resumed_from is None and m:
            self.fail(f"{log_path}: resumed from {m.group(1)} although no checkpoint was complete")
            ok = False
        saved = max(complete_steps(self.ck), default=0) > (resumed_from or 0)
        if saved and resumed_from is not None and not m:
            self.fail(f"{log_path}: saved a checkpoint but never logged 'resumed from'")
            ok = False
        survived = sorted(s[0] for s in stale_before if identity(s[0]) == s)
        if saved and survived:
            self.fail(f"{log_path}: files of killed saves survived the run's first save: {survived}")
            ok = False
        for problem in check_metrics(self.a.run_dir):
            self.fail(f"after {os.path.basename(log_path)}: {problem}")
            ok = False
        return ok

    def run(self):
        a = self.a
        plan = make_plan(a.seed, a.kills)
        print(f"SIGKILL campaign: {a.kills} kills, seed {a.seed}", flush=True)
        for i, p in enumerate(plan):
            complete = complete_steps(self.ck)
            resumed_from = complete[-1] if complete else None
            target = self.target_of(i, p)
            stale_before = set(self.stale)
            watch = DirWatch(self.ck)
            proc, log_path = self.launch()
            fired = self.trigger(p, target, proc, watch)
            self.stats["watch"] = self.stats["watch"] or watch.mode()
            watch.close()
            if fired is None:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                    self.fail(f"{log_path}: kill {i + 1}'s moment did not come within {a.timeout:.0f} s")
                    return self.finish(None)
                print(f"kill {i + 1}/{a.kills}: the run ended (exit code {proc.returncode}) before its kill "
                      "moment; it is the final run", flush=True)
                return self.finish((proc, log_path, resumed_from, stale_before))
            code = proc.wait()
            if code != -signal.SIGKILL:
                self.fail(f"{log_path}: exit status {code} instead of SIGKILL")
            kind, what = fired
            self.stats["kills"] += 1
            self.stats["early"] += kind == "early"
            now = {identity(x) for x in leftovers(a.run_dir)} - {None}
            temps = sorted(s[0] for s in now if (t := TEMP_FILE.match(os.path.basename(s[0])))
                           and int(t.group("pid")) == proc.pid)
            orphans = sorted(s[0] for s in now - stale_before if not TEMP_FILE.match(os.path.basename(s[0])))
            self.stats["in_write"] += bool(temps)
            self.stats["between_files"] += bool(orphans) and not temps
            ok = self.check_run(log_path, resumed_from, stale_before)
            if i > 0:  # every run after the first is the resume of a killed one
                self.stats["resumes"] += 1
                self.stats["resumes_ok"] += ok
            where = ("; inside a write: " if temps else "; between the files of a save: ") + \
                ", ".join(os.path.basename(x) for x in temps or orphans) if temps or orphans else ""
            print(f"kill {i + 1}/{a.kills} (pid {proc.pid}, {kind}): {what}; logged up to step "
                  f"{max_logged_step(a.run_dir)}, newest checkpoint {max(complete_steps(self.ck), default=0)}"
                  + where, flush=True)
            self.stale = now
        return self.finish(None)

    def finish(self, ended):
        """The last resume runs to the end (`ended`: a run that already did); then the run directory must hold
        no leftovers, metrics.jsonl every step once with the uninterrupted run's losses, and the final weights
        and state must equal the uninterrupted run's bitwise."""
        a = self.a
        if ended is None:
            complete = complete_steps(self.ck)
            resumed_from = complete[-1] if complete else None
            stale_before = set(self.stale)
            proc, log_path = self.launch()
            try:
                proc.wait(timeout=a.timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            ended = (proc, log_path, resumed_from, stale_before)
        proc, log_path, resumed_from, stale_before = ended
        self.stats["resumes"] += 1
        print(f"final run from step {resumed_from or 0}: exit code {proc.returncode}", flush=True)
        if proc.returncode != 0:
            self.fail(f"{log_path}: the final run exited with {proc.returncode}")
        if self.check_run(log_path, resumed_from, stale_before) and proc.returncode == 0:
            self.stats["resumes_ok"] += 1
        left = leftovers(a.run_dir) + broken_checkpoints(a.run_dir)
        self.stats["leftovers_ok"] = not left
        if left:
            self.fail(f"files left in the finished run: {left}")
        problems = check_metrics(a.run_dir, steps=a.steps, ref_dir=a.ref_dir)
        for problem in problems:
            self.fail(problem)
        self.stats["metrics_ok"] = not problems
        for kind in ("weights", "state"):
            name = "step-%08d.%s.safetensors" % (a.steps, kind)
            try:
                equal, msg = compare_tensors(os.path.join(self.ck, name),
                                             os.path.join(a.ref_dir, "checkpoints", name))
            except (OSError, ValueError) as e:
                equal, msg = False, str(e)
            self.stats[kind + "_equal"] = equal
            print(f"final {kind} vs the uninterrupted run: {msg}", flush=True)
            if not equal:
                self.fail(f"final {kind}: {msg}")
        self.stats["failures"] = self.failures
        return self.stats


# ---- command line ----

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="action", required=True)
    k = sub.add_parser("kills")
    k.add_argument("--run-dir", required=True)
    k.add_argument("--ref-dir", required=True)
    k.add_argument("--log-dir", required=True)
    k.add_argument("--report", required=True)
    k.add_argument("--kills", type=int, required=True)
    k.add_argument("--seed", type=int, required=True)
    k.add_argument("--steps", type=int, required=True, help="optimizer steps of the run")
    k.add_argument("--step-seconds", type=float, required=True)
    k.add_argument("--startup-seconds", type=float, required=True)
    k.add_argument("--timeout", type=float, required=True, help="longest wait for one run")
    k.add_argument("cmd", nargs="+", help="the semaim command (with --resume auto)")
    t = sub.add_parser("same-tensors")
    t.add_argument("a")
    t.add_argument("b")
    m = sub.add_parser("metrics")
    m.add_argument("run")
    m.add_argument("--steps", type=int)
    m.add_argument("--max-step", type=int)
    m.add_argument("--ref")
    lo = sub.add_parser("leftovers")
    lo.add_argument("run")
    w = sub.add_parser("wait-step")
    w.add_argument("run")
    w.add_argument("step", type=int)
    w.add_argument("--pid", type=int, required=True)
    w.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()

    if a.action == "kills":
        stats = Campaign(a).run()
        with open(a.report, "w") as f:
            json.dump(stats, f, indent=1)
        return 0 if not stats["failures"] else 1
    if a.action == "same-tensors":
        equal, msg = compare_tensors(a.a, a.b)
        print(msg)
        return 0 if equal else 1
    if a.action == "metrics":
        problems = check_metrics(a.run, steps=a.steps, ref_dir=a.ref, max_step=a.max_step)
        print("\n".join(problems) if problems else "metrics.jsonl: each step once"
              + (", losses equal to the reference's" if a.ref else ""))
        return 1 if problems else 0
    if a.action == "leftovers":
        left = leftovers(a.run) + broken_checkpoints(a.run)
        print("\n".join(left) if left else "no temp files, orphans or truncated checkpoint files")
        return 1 if left else 0
    if a.action == "wait-step":
        def alive():
            try:
                os.kill(a.pid, 0)
            except ProcessLookupError:
                return False
            with open(f"/proc/{a.pid}/stat") as f:  # a zombie is not running
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        return 0 if wait_for_step(a.run, a.step, alive, time.monotonic() + a.timeout) else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
