#!/usr/bin/env python3
"""Crash loop: `kiln upscale <folder> -o OUT` killed with SIGKILL at a random moment, over and
over, then one clean run to completion; then what a user finds. Outside CI (issue 16's soak
and fault suite; figures in docs/reliability.md). Python 3 standard library only.

Each cycle starts `kiln upscale` on a folder of --images small PNGs (fresh data folder for the
whole loop, so every cycle shares one queue) and kills it after a time drawn uniformly from
--kill-after (seeded). After --cycles cycles one run goes to the end. Then:

- loss: every input has an output;
- duplicates: every input has exactly one output (`photo_x4.png`, no `photo_x4-1.png`);
- truncation: every output decodes fully (CRC of every chunk, IEND last, pixel data complete),
  and no `.part` file is left;
- the queue (`<data dir>/queue.db`): no job is left running, no input has two jobs in the last
  run's batch, and no job of a killed run is left waiting to run again;
- orphans: every output file is the recorded result of a finished job.

Prints the counts (markdown) and one JSON line; exits 1 on any of the above.

    python3 scripts/reliability/crash_loop.py [--cycles 200] [--images 12] [--device cpu] [--kiln PATH]
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pngio  # noqa: E402


def run_once(kiln, args, env, log, kill_after):
    """One `kiln upscale`; killed after `kill_after` seconds unless it ends first.
    Returns (exit code or "killed", seconds)."""
    started = time.monotonic()
    process = subprocess.Popen([kiln, "upscale", args.inputs, "-o", args.out, "--device", args.device],
                               stdout=log, stderr=log, env=env)
    try:
        code = process.wait(kill_after)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        code = "killed"
    return code, time.monotonic() - started


def queue_rows(db):
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT id, batch_id, state, spec, outcomes, attempts FROM jobs ORDER BY id").fetchall()
    finally:
        conn.close()
    jobs = []
    for job_id, batch, state, spec, outcomes, attempts in rows:
        outcomes = json.loads(outcomes)
        jobs.append({"id": job_id, "batch": batch, "state": state, "input": json.loads(spec)["input"],
                     "output": outcomes[-1]["output"] if outcomes else None, "attempts": attempts})
    return jobs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kiln", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "debug", "kiln"))
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--kill-after", type=float, nargs=2, default=[0.2, 6.0], metavar=("MIN", "MAX"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--final-timeout-s", type=float, default=3600)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    kiln = os.path.abspath(args.kiln)
    if not os.access(kiln, os.X_OK):
        raise SystemExit(f"no kiln binary at {kiln}: build it (cargo build --workspace --all-targets) or pass --kiln")
    rng = random.Random(args.seed)

    tmp = tempfile.mkdtemp(prefix="kiln-crash-")
    home, data = os.path.join(tmp, "home"), os.path.join(tmp, "data")
    args.inputs, args.out = os.path.join(home, "inputs"), os.path.join(home, "out")
    for d in (home, data, args.inputs):
        os.makedirs(d)
    env = dict(os.environ, HOME=home, KILN_DATA_DIR=data)
    stems = []
    for i in range(args.images):
        w, h = 32 + 8 * (i % 5), 32 + 8 * ((i * 3) % 4)
        stem = f"img{i:03d}"
        with open(os.path.join(args.inputs, stem + ".png"), "wb") as f:
            f.write(pngio.encode_rgb(w, h, pngio.test_image(w, h, i)))
        stems.append(stem)
    print(f"crash_loop: temporary folder {tmp}", file=sys.stderr)

    cycles = {"killed": 0, "ended_by_itself": 0, "exit_codes": {}}
    with open(os.path.join(tmp, "runs.log"), "ab") as log:
        for cycle in range(args.cycles):
            kill_after = rng.uniform(*args.kill_after)
            log.write(f"\n== cycle {cycle}: kill after {kill_after:.2f} s\n".encode())
            log.flush()
            code, seconds = run_once(kiln, args, env, log, kill_after)
            if code == "killed":
                cycles["killed"] += 1
            else:
                cycles["ended_by_itself"] += 1
                cycles["exit_codes"][str(code)] = cycles["exit_codes"].get(str(code), 0) + 1
            done = len([n for n in os.listdir(args.out) if n.endswith(".png")]) if os.path.isdir(args.out) else 0
            print(f"cycle {cycle + 1}/{args.cycles}: {code} after {seconds:.2f} s; {done} outputs so far",
                  file=sys.stderr)
        log.write(b"\n== the clean run\n")
        log.flush()
        final_code, final_s = run_once(kiln, args, env, log, args.final_timeout_s)

    # What the user finds.
    files = sorted(os.listdir(args.out)) if os.path.isdir(args.out) else []
    parts = [n for n in files if n.endswith(".part")]
    outputs = {stem: [] for stem in stems}
    strays = []
    for name in files:
        match = re.fullmatch(r"(img\d{3})_x4(?:-(\d+))?\.png", name)
        if match and match.group(1) in outputs:
            outputs[match.group(1)].append(name)
        elif name not in parts:
            strays.append(name)
    broken = []
    for name in files:
        if name in parts or name in strays:
            continue
        try:
            with open(os.path.join(args.out, name), "rb") as f:
                pngio.decode(f.read())
        except pngio.PngError as error:
            broken.append(f"{name}: {error}")
    lost = [s for s in stems if not outputs[s]]
    duplicated = {s: names for s, names in outputs.items() if len(names) > 1}

    jobs = queue_rows(os.path.join(data, "queue.db"))
    last_batch = max((j["batch"] for j in jobs if j["batch"] is not None), default=None)
    states = {}
    for j in jobs:
        states[j["state"]] = states.get(j["state"], 0) + 1
    running = [j["id"] for j in jobs if j["state"] == "running"]
    in_last = {}
    for j in jobs:
        if j["batch"] == last_batch:
            in_last.setdefault(j["input"], []).append(j["id"])
    last_batch_duplicates = {os.path.basename(i): ids for i, ids in in_last.items() if len(ids) > 1}
    last_batch_states = {}
    for j in jobs:
        if j["batch"] == last_batch:
            last_batch_states[j["state"]] = last_batch_states.get(j["state"], 0) + 1
    # Jobs of killed runs still queued (or paused) would run again the next time the app or
    # `kiln serve` starts its workers, and write another copy of an input already done.
    left_waiting = [j["id"] for j in jobs if j["batch"] != last_batch and j["state"] in ("queued", "paused")]
    recorded = {os.path.basename(j["output"]) for j in jobs if j["state"] == "done" and j["output"]}
    orphans = [n for names in outputs.values() for n in names if n not in recorded]
    done_per_input = {}
    for j in jobs:
        if j["state"] == "done":
            name = os.path.basename(j["input"])
            done_per_input[name] = done_per_input.get(name, 0) + 1

    result = {
        "cycles": args.cycles, "images": args.images, "device": args.device, "seed": args.seed,
        "kill_after_s": args.kill_after, "killed": cycles["killed"], "ended_by_itself": cycles["ended_by_itself"],
        "exit_codes_of_runs_that_ended": cycles["exit_codes"], "final_exit": final_code,
        "final_seconds": round(final_s, 1), "output_files": len(files) - len(parts) - len(strays),
        "lost_inputs": lost, "inputs_with_several_outputs": len(duplicated),
        "most_outputs_for_one_input": max((len(v) for v in outputs.values()), default=0),
        "truncated_or_corrupt": broken, "part_files": parts, "stray_files": strays,
        "queue_jobs": len(jobs), "queue_states": states, "batches": len({j["batch"] for j in jobs}),
        "running_left": running, "last_batch_states": last_batch_states,
        "last_batch_duplicates": last_batch_duplicates, "killed_runs_jobs_left_waiting": len(left_waiting),
        "orphan_outputs": orphans, "done_jobs_per_input_max": max(done_per_input.values(), default=0),
    }
    checks = [
        ("clean run exit code 0", final_code == 0),
        ("no input lost", not lost),
        ("exactly one output per input", not duplicated),
        ("no truncated or corrupt output", not broken),
        ("no .part file left", not parts),
        ("no job left running", not running),
        ("no input twice in the last run's batch", not last_batch_duplicates),
        ("no job of a killed run left waiting to run again", not left_waiting),
        ("no output without a finished job", not orphans),
    ]
    print("| crash loop | value |\n|---|---|")
    for key in ("cycles", "images", "device", "seed", "killed", "ended_by_itself", "final_exit", "final_seconds",
                "output_files", "inputs_with_several_outputs", "most_outputs_for_one_input", "queue_jobs",
                "queue_states", "batches", "last_batch_states", "killed_runs_jobs_left_waiting",
                "done_jobs_per_input_max"):
        print(f"| {key} | {result[key]} |")
    print("\n| check | result |\n|---|---|")
    for label, ok in checks:
        print(f"| {label} | {'pass' if ok else 'FAIL'} |")
    for label, items in [("lost", lost), ("duplicated", [f"{s}: {v}" for s, v in duplicated.items()][:12]),
                         ("broken", broken), (".part", parts), ("stray", strays), ("running", running),
                         ("orphans", orphans[:12])]:
        if items:
            print(f"- {label}: {items}")
    result["checks"] = {label: ok for label, ok in checks}
    print(json.dumps(result, sort_keys=True))
    failed = not all(ok for _, ok in checks)
    if failed or args.keep:
        print(f"crash_loop: kept {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
