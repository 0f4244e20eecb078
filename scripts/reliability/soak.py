#!/usr/bin/env python3
"""Soak: `kiln serve` on a fresh data folder, two queued upscale jobs at a time on one device
for --minutes, while other threads hammer the same device through the HTTP API: model loads
and unloads, pool readings every 100 ms, benchmarks, memory releases, and event-stream clients
that connect and drop. Outside CI (issue 16's soak and fault suite; figures in
docs/reliability.md). Python 3 standard library only.

Every finished job's output is compared with a reference made before the soak by
`kiln upscale --device cpu` on the same input (or, with --reference first, with the soak's own
first output of that input): every channel within --tolerance 8-bit steps. A job that makes no
progress for --stall-s seconds, or a request unanswered after --request-timeout-s, is a hang.
At the end the server gets SIGTERM and must exit 0 with no panic, abort or "corrupted" on its
stderr. Prints a markdown summary and one JSON line; exits 1 if any job was lost, failed,
hung or wrong, any request failed unexpectedly, or the server did not stop cleanly.

    python3 scripts/reliability/soak.py [--minutes 30] [--device ID] [--kiln PATH]
"""

import argparse
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pngio  # noqa: E402

# Input sizes (width, height): small, so that jobs turn over quickly on any device.
SIZES = [(48, 48), (64, 40), (96, 72), (128, 128), (80, 112)]
# Answers that are not errors: unloading a model a running job holds.
EXPECTED = {("models.unload", "busy")}


class Stats:
    """Per kind of request: count, answers, errors by code, the slowest answer."""

    def __init__(self):
        self.lock = threading.Lock()
        self.kinds = {}
        self.hangs = []
        self.unexpected = []

    def record(self, kind, seconds, code=None, note=""):
        with self.lock:
            k = self.kinds.setdefault(kind, {"requests": 0, "ok": 0, "expected": {}, "errors": {}, "slowest_s": 0.0})
            k["requests"] += 1
            k["slowest_s"] = max(k["slowest_s"], seconds)
            if code is None:
                k["ok"] += 1
            elif (kind, code) in EXPECTED:
                k["expected"][code] = k["expected"].get(code, 0) + 1
            else:
                k["errors"][code] = k["errors"].get(code, 0) + 1
                if len(self.unexpected) < 50:
                    self.unexpected.append(f"{kind}: {code} {note}"[:300])
            if code == "no_answer":
                self.hangs.append(f"{kind}: no answer within the request timeout")


class Api:
    def __init__(self, port, token, timeout, stats):
        self.port, self.token, self.timeout, self.stats = port, token, timeout, stats

    def call(self, op, body=None, method="POST"):
        """(ok, value or {code, message}). GET for queries, POST with JSON for changes."""
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            if method == "GET":
                path = f"/api/{op}"
                if body is not None:
                    path += "?input=" + urllib.parse.quote(json.dumps(body))
                conn.request("GET", path, headers=headers)
            else:
                headers["Content-Type"] = "application/json"
                conn.request("POST", f"/api/{op}", body=json.dumps(body if body is not None else {}), headers=headers)
            response = conn.getresponse()
            data = response.read()
            seconds = time.monotonic() - started
            try:
                value = json.loads(data) if data else None
            except ValueError:
                value = {"code": f"http_{response.status}", "message": data[:200].decode(errors="replace")}
            if response.status == 200:
                self.stats.record(op, seconds)
                return True, value
            code = value.get("code", f"http_{response.status}") if isinstance(value, dict) else f"http_{response.status}"
            self.stats.record(op, seconds, code, value.get("message", "") if isinstance(value, dict) else "")
            return False, value
        except socket.timeout:
            self.stats.record(op, time.monotonic() - started, "no_answer")
            return False, {"code": "no_answer", "message": "no answer within the timeout"}
        except OSError as error:
            self.stats.record(op, time.monotonic() - started, "connection", str(error))
            return False, {"code": "connection", "message": str(error)}
        finally:
            conn.close()

    def get(self, op, body=None):
        return self.call(op, body, "GET")


def start_server(kiln, env, log_dir):
    out = open(os.path.join(log_dir, "serve.stdout"), "wb")
    err = open(os.path.join(log_dir, "serve.stderr"), "wb")
    process = subprocess.Popen([kiln, "serve", "--port", "0"], stdout=out, stderr=err, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with open(os.path.join(log_dir, "serve.stdout"), "rb") as f:
            first = f.readline().decode(errors="replace")
        if first.endswith("\n") and "#token=" in first:
            url = first.split()[-1]
            address, token = url.split("/#token=")
            port = int(address.rsplit(":", 1)[1])
            return process, port, token
        if process.poll() is not None:
            raise SystemExit(f"kiln serve ended with {process.returncode} before printing its address")
        time.sleep(0.2)
    process.kill()
    raise SystemExit("kiln serve printed no address within 300 s")


def pick_device(api, wanted):
    ok, listed = api.get("devices.list")
    if not ok:
        raise SystemExit(f"devices.list failed: {listed}")
    devices = [d for d in listed["devices"] if d.get("compute_backend")]
    if wanted:
        for d in devices:
            if d["id"] == wanted:
                return d
        raise SystemExit(f"no computing device {wanted}; computing devices: {[d['id'] for d in devices]}")
    for kinds in (("discrete_gpu", "integrated_gpu"), ("software_gpu",)):
        for d in devices:
            if d["kind"] in kinds:
                return d
    raise SystemExit(f"no GPU computes here; devices: {[(d['id'], d['kind']) for d in listed['devices']]}")


def bundled_model(api):
    deadline = time.monotonic() + 120
    while True:
        ok, library = api.get("models.list")
        if ok:
            bundled = {f["path"] for f in library["folders"] if f["kind"] == "bundled"}
            found = [m for m in library["models"] if m["runnable"] and m["folder"] in bundled]
            if found:
                return found[0]["path"]
        if time.monotonic() > deadline:
            raise SystemExit(f"no runnable bundled model in models.list: {library}")
        time.sleep(1)


class Soak:
    def __init__(self, args, api, device_id, model, inputs, references, out_dir, rng):
        self.args, self.api, self.device_id, self.model = args, api, device_id, model
        self.inputs, self.references, self.out_dir = inputs, references, out_dir
        self.rng = rng
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.jobs = {"submitted": 0, "done": 0, "failed": {}, "cancelled": 0, "lost": [], "hung": [], "wrong": []}
        self.max_diff = 0
        self.tiles = {}
        self.oom_retries = 0
        self.run_s, self.wait_s = [], []  # per finished job: running, and queued before that
        self.checked_streams = {}  # (input, sha256 of IDAT) -> difference from the reference
        self.events = {"connections": 0, "events": 0, "lagged": 0}

    # The hammering threads. Each runs until `stop`, pausing a little between requests.

    def loads(self):
        rng = random.Random(self.rng.random())
        target = {"path": self.model, "device_id": self.device_id}
        while not self.stop.wait(rng.uniform(0.2, 2.0)):
            self.api.call("models.load", target)
            if self.stop.wait(rng.uniform(0.2, 2.0)):
                break
            self.api.call("models.unload", target)

    def readings(self):
        n = 0
        while not self.stop.wait(0.1):
            n += 1
            if n % 10 == 0:
                self.api.get("memory.status")
            else:
                self.api.get("memory.usage", {"device_id": self.device_id})

    def benchmarks(self):
        rng = random.Random(self.rng.random())
        while not self.stop.wait(rng.uniform(*self.args.benchmark_pause_s)):
            self.api.call("devices.benchmark", {"device_id": self.device_id})

    def releases(self):
        rng = random.Random(self.rng.random())
        while not self.stop.wait(rng.uniform(1.0, 5.0)):
            op = rng.choice(["memory.cleanup", "devices.reset"])
            self.api.call(op, {"device_id": self.device_id})

    def event_client(self):
        """Connects to the event stream as a browser's EventSource does (the token in the query
        string), reads for a random short time, and drops the connection without a goodbye.
        A raw socket: http.client's reader cannot go on after a read timeout."""
        rng = random.Random(self.rng.random())
        while not self.stop.wait(rng.uniform(0.05, 1.0)):
            started = time.monotonic()
            stay = rng.uniform(0.2, 5.0)
            sock = None
            try:
                sock = socket.create_connection(("127.0.0.1", self.api.port), timeout=self.args.request_timeout_s)
                sock.sendall((f"GET /api/events?token={self.api.token} HTTP/1.1\r\n"
                              f"Host: 127.0.0.1:{self.api.port}\r\nAccept: text/event-stream\r\n\r\n").encode())
                received = b""
                while b"\r\n\r\n" not in received:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionError("closed before the headers ended")
                    received += chunk
                status = received.split(b"\r\n", 1)[0]
                if b" 200 " not in status + b" ":
                    self.api.stats.record("events", time.monotonic() - started, "http_" + status.decode()[9:12])
                    continue
                self.api.stats.record("events", time.monotonic() - started)
                with self.lock:
                    self.events["connections"] += 1
                count = lambda data: (data.count(b"\nevent:"), data.count(b"\nevent: lagged"))
                events, lagged = count(received)
                sock.settimeout(0.5)
                while time.monotonic() - started < stay and not self.stop.is_set():
                    try:
                        chunk = sock.recv(65536)
                    except socket.timeout:
                        continue
                    if not chunk:
                        self.api.stats.record("events (ended while the server ran)", 0.0, "ended")
                        break
                    more = count(chunk)
                    events, lagged = events + more[0], lagged + more[1]
                with self.lock:
                    self.events["events"] += events
                    self.events["lagged"] += lagged
            except socket.timeout:
                self.api.stats.record("events", time.monotonic() - started, "no_answer")
            except OSError as error:
                self.api.stats.record("events", time.monotonic() - started, "connection", str(error))
            finally:
                if sock is not None:
                    sock.close()  # the drop: the server notices on its next write

    # The jobs: two in flight at a time, each checked when it finishes.

    def submit(self, index):
        path = self.inputs[index]
        step = {"kind": "upscale", "size": {"by": "model"}, "format": "png", "quality": 92, "alpha": "model",
                "tta": False, "precision": self.args.precision, "model": self.model}
        ok, answer = self.api.call("jobs.submit", {
            "inputs": [{"from": "path", "path": path}], "recursive": False, "steps": [step],
            "output_dir": self.out_dir, "device_id": self.device_id, "priority": 0})
        if not ok or not answer["jobs"]:
            return None
        with self.lock:
            self.jobs["submitted"] += 1
        return answer["jobs"][0]["id"]

    def check_output(self, job, details):
        outcome = job["outcomes"][-1]
        self.tiles[outcome["tile"]] = self.tiles.get(outcome["tile"], 0) + 1
        self.oom_retries += sum("out of memory" in line["message"] for line in details["log"])
        source = job["spec"]["input"]
        output = outcome["output"]
        try:
            with open(output, "rb") as f:
                data = f.read()
            _, stream = pngio.idat_stream(data)
        except (OSError, pngio.PngError) as error:
            self.jobs["lost"].append(f"job {job['id']}: its output {output} does not read: {error}")
            return
        key = (source, hashlib.sha256(stream).hexdigest())
        difference = self.checked_streams.get(key)
        if difference is None:
            if source not in self.references:  # --reference first: this output becomes it
                self.references[source] = pngio.decode(data)
            difference = pngio.max_difference(pngio.decode(data), self.references[source])
            self.checked_streams[key] = difference
        if difference is None or difference > self.args.tolerance:
            self.jobs["wrong"].append(f"job {job['id']} ({os.path.basename(source)}): {output} differs from the "
                                      f"reference by {difference} steps (tile {outcome['tile']})")
            return  # kept for a look
        self.max_diff = max(self.max_diff, difference)
        os.remove(output)

    def run_jobs(self, deadline):
        rng = random.Random(self.rng.random())
        in_flight = {}  # id -> [last (state, progress), when it last changed]
        last_any = time.monotonic()
        submitting = True
        while True:
            now = time.monotonic()
            if now >= deadline:
                submitting = False
            while submitting and len(in_flight) < 2:
                job_id = self.submit(rng.randrange(len(self.inputs)))
                if job_id is None:
                    break
                in_flight[job_id] = [None, now]
            if not in_flight:
                return
            for job_id in list(in_flight):
                ok, details = self.api.get("jobs.get", {"id": job_id})
                now = time.monotonic()
                if not ok:
                    if details.get("code") == "not_found":
                        self.jobs["lost"].append(f"job {job_id}: gone from the queue")
                        del in_flight[job_id]
                    continue
                job = details["job"]
                seen = (job["state"], job["progress"])
                if seen != in_flight[job_id][0]:
                    in_flight[job_id] = [seen, now]
                    last_any = now
                state = job["state"]
                if state in ("done", "failed", "cancelled"):
                    del in_flight[job_id]
                    if job.get("started_ms") and job.get("finished_ms"):
                        self.run_s.append((job["finished_ms"] - job["started_ms"]) / 1000)
                        self.wait_s.append((job["started_ms"] - job["created_ms"]) / 1000)
                    if state == "done":
                        self.jobs["done"] += 1
                        self.check_output(job, details)
                    elif state == "failed":
                        code = (job.get("error") or {}).get("code", "unknown")
                        self.jobs["failed"][code] = self.jobs["failed"].get(code, 0) + 1
                        if len(self.api.stats.unexpected) < 50:
                            self.api.stats.unexpected.append(f"job {job_id} failed: {job.get('error')}"[:300])
                    else:
                        self.jobs["cancelled"] += 1
                    continue
                # A running job silent for the stall limit, or a queued one while no job moved.
                since = now - (in_flight[job_id][1] if state == "running" else last_any)
                if since > self.args.stall_s:
                    log = [line["message"] for line in details["log"]][-5:]
                    self.jobs["hung"].append(f"job {job_id}: {state} with no progress for {since:.0f} s; log: {log}")
                    return  # a hang ends the soak: what follows would only wait behind it
            time.sleep(0.25)


def references_from_cpu(kiln, env, inputs, model, ref_dir, timeout):
    """Each input through `kiln upscale --device cpu`, in a data folder of its own."""
    env = dict(env, KILN_DATA_DIR=os.path.join(ref_dir, "data"))
    out = os.path.join(ref_dir, "out")
    started = time.monotonic()
    done = subprocess.run([kiln, "upscale", *inputs, "-o", out, "--device", "cpu", "--model", model, "--precision", "f32"],
                          env=env, capture_output=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"the CPU reference run failed ({done.returncode}):\n{done.stderr.decode(errors='replace')[-3000:]}")
    references = {}
    for path in inputs:
        stem = os.path.splitext(os.path.basename(path))[0]
        with open(os.path.join(out, f"{stem}_x4.png"), "rb") as f:
            references[os.path.realpath(path)] = pngio.decode(f.read())
    return references, time.monotonic() - started


def spread(values):
    if not values:
        return "-"
    values = sorted(values)
    return f"{values[0]:.1f} / {values[len(values) // 2]:.1f} / {values[-1]:.1f}"


def summary_table(result):
    lines = ["| request | count | ok | expected answers | errors by code | slowest (s) |", "|---|---|---|---|---|---|"]
    for kind, k in sorted(result["requests"].items()):
        expected = ", ".join(f"{c}: {n}" for c, n in k["expected"].items()) or "-"
        errors = ", ".join(f"{c}: {n}" for c, n in k["errors"].items()) or "-"
        lines.append(f"| {kind} | {k['requests']} | {k['ok']} | {expected} | {errors} | {k['slowest_s']:.2f} |")
    j = result["jobs"]
    lines += ["", "| jobs | count |", "|---|---|"]
    for label, value in [("submitted", j["submitted"]), ("done", j["done"]),
                         ("failed", sum(j["failed"].values())), ("cancelled", j["cancelled"]),
                         ("lost", len(j["lost"])), ("hung", len(j["hung"])), ("wrong output", len(j["wrong"])),
                         ("largest difference from the reference (8-bit steps)", result["max_difference"]),
                         ("tiles used", result["tiles"]), ("out-of-memory retries", result["oom_retries"]),
                         ("job running s (min / median / max)", spread(result["job_run_s"])),
                         ("job queued s (min / median / max)", spread(result["job_wait_s"])),
                         ("request hangs", len(result["request_hangs"])),
                         ("event streams opened / events read", f"{result['events']['connections']} / {result['events']['events']}"),
                         ("server exit code after SIGTERM", result["server_exit"]),
                         ("server stderr flags", result["stderr_flags"] or "none")]:
        lines.append(f"| {label} | {value} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kiln", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "debug", "kiln"))
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--device", help="a device id from `kiln devices`; default: the first GPU, else the software GPU")
    parser.add_argument("--precision", default="f32", choices=["auto", "f32", "f16"],
                        help="the jobs' precision (f32, like the CPU reference)")
    parser.add_argument("--reference", default="cpu", choices=["cpu", "first"],
                        help="compare with `kiln upscale --device cpu`, or with each input's first soak output")
    parser.add_argument("--tolerance", type=int, default=2, help="largest per-channel difference, 8-bit steps")
    parser.add_argument("--stall-s", type=float, default=600, help="a job without progress this long is a hang")
    parser.add_argument("--request-timeout-s", type=float, default=300, help="a request unanswered this long is a hang")
    parser.add_argument("--benchmark-pause-s", type=float, nargs=2, default=[10, 30], metavar=("MIN", "MAX"))
    parser.add_argument("--event-clients", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    kiln = os.path.abspath(args.kiln)
    if not os.access(kiln, os.X_OK):
        raise SystemExit(f"no kiln binary at {kiln}: build it (cargo build --workspace --all-targets) or pass --kiln")
    rng = random.Random(args.seed)

    tmp = tempfile.mkdtemp(prefix="kiln-soak-")
    home = os.path.join(tmp, "home")
    in_dir, out_dir = os.path.join(home, "inputs"), os.path.join(home, "outputs")
    for d in (home, in_dir, out_dir, os.path.join(tmp, "data")):
        os.makedirs(d)
    env = dict(os.environ, HOME=home, KILN_DATA_DIR=os.path.join(tmp, "data"))
    inputs = []
    for seed, (w, h) in enumerate(SIZES):
        path = os.path.join(in_dir, f"soak{seed}_{w}x{h}.png")
        with open(path, "wb") as f:
            f.write(pngio.encode_rgb(w, h, pngio.test_image(w, h, seed)))
        inputs.append(os.path.realpath(path))
    print(f"soak: temporary folder {tmp}", file=sys.stderr)

    stats = Stats()
    process, port, token = start_server(kiln, env, tmp)
    api = Api(port, token, args.request_timeout_s, stats)
    try:
        device = pick_device(api, args.device)
        model = bundled_model(api)
        print(f"soak: {device['name']} ({device['id']}), model {os.path.basename(model)}, port {port}",
              file=sys.stderr)
        references, reference_s = {}, 0.0
        if args.reference == "cpu":
            references, reference_s = references_from_cpu(kiln, env, inputs, model, os.path.join(tmp, "reference"),
                                                          1800)
            print(f"soak: CPU references made in {reference_s:.1f} s", file=sys.stderr)
    except BaseException:
        process.kill()
        process.wait()
        print(f"soak: kept {tmp}", file=sys.stderr)
        raise

    soak = Soak(args, api, device["id"], model, inputs, references, out_dir, rng)
    threads = [threading.Thread(target=t, daemon=True) for t in (soak.loads, soak.readings, soak.benchmarks, soak.releases)]
    threads += [threading.Thread(target=soak.event_client, daemon=True) for _ in range(args.event_clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    try:
        soak.run_jobs(started + args.minutes * 60)
    finally:
        soak.stop.set()
        for t in threads:
            t.join(args.request_timeout_s + 10)
        stuck_threads = [t.name for t in threads if t.is_alive()]
        soaked_s = time.monotonic() - started
        process.send_signal(signal.SIGTERM)
        try:
            server_exit = process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            server_exit = "did not stop within 60 s of SIGTERM"
    with open(os.path.join(tmp, "serve.stderr"), "rb") as f:
        stderr = f.read().decode(errors="replace")
    flags = [word for word in ("panic", "abort", "corrupted") if word in stderr.lower()]

    result = {
        "device": device["id"], "device_name": device["name"], "model": os.path.basename(model),
        "minutes": round(soaked_s / 60, 2), "precision": args.precision, "reference": args.reference,
        "reference_seconds": round(reference_s, 1), "requests": stats.kinds, "jobs": soak.jobs,
        "max_difference": soak.max_diff, "tiles": soak.tiles, "oom_retries": soak.oom_retries,
        "job_run_s": [round(v, 2) for v in soak.run_s], "job_wait_s": [round(v, 2) for v in soak.wait_s],
        "request_hangs": stats.hangs + [f"thread {n} did not end" for n in stuck_threads],
        "events": soak.events, "server_exit": server_exit, "stderr_flags": flags,
        "unexpected": stats.unexpected,
    }
    failures = (len(soak.jobs["lost"]) + len(soak.jobs["hung"]) + len(soak.jobs["wrong"])
                + sum(soak.jobs["failed"].values()) + len(result["request_hangs"])
                + sum(sum(k["errors"].values()) for k in stats.kinds.values())
                + (server_exit != 0) + len(flags) + (soak.jobs["done"] == 0))
    print(summary_table(result))
    for line in soak.jobs["lost"] + soak.jobs["hung"] + soak.jobs["wrong"] + stats.unexpected:
        print(f"- {line}")
    if flags:
        print("server stderr (tail):\n" + stderr[-3000:])
    print(json.dumps(result, sort_keys=True))
    if failures or args.keep:
        print(f"soak: kept {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
