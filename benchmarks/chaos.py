"""Chaos: kill a suite at random moments, many times, rerun it until it is done, and count
what was lost.

    python benchmarks/chaos.py [--kills 30] [--seed 0] [--runs 20] [--epochs 12]

A suite of about 20 tiny point-cloud runs on the local executor with two workers is first run
once, uninterrupted (the reference). Then, into a fresh directory, the same command is started
again and again; each time, after a random delay, one of three faults hits it — `kill -9` of
one worker while both are training, `kill -9` of the driver, or SIGINT (Ctrl-C) to the driver's
process group — and it is rerun until it exits 0; while kills are left, another round starts
in another fresh directory. It prints:

* kills survived, by kind;
* workers still alive 10 s after their driver was killed (orphans; goal 0);
* records lost (a run that had an ok record and later had none), duplicated (more than one
  ok record of a run), corrupt (lines the store skips) — goal 0 each;
* runs whose epochs differ from the reference's in any loss, metric or NFE (times aside) —
  goal 0: a resumed run continues exactly where it stopped.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

SUITE = """
name: chaos
execution: {{executor: local, workers: 2}}
runs:
  - task: point_cloud
    models: [node, anode, sonode, hbnode, ghbnode]
    seeds: {{start: 0, count: {seeds}}}
    epochs: {epochs}
    lr: 0.02
    solver: {{method: rk4, options: {{step_size: 0.25}}}}
"""
KINDS = ("worker", "driver", "sigint")


def command(suite: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "run", str(suite), "--out", str(out),
            "--device", "cpu", "--quiet"]


def workers_of(pid: int) -> list[int]:
    """The driver's worker processes (spawned by multiprocessing; its resource tracker aside)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                found.append(child)
    return found


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def lines(out: Path) -> list[str]:
    path = out / "results.jsonl"
    return path.read_text(errors="replace").splitlines() if path.exists() else []


def records(out: Path) -> tuple[list[dict], int]:
    """The whole records of a results file, and how many lines are not whole records."""
    whole, corrupt = [], 0
    for line in lines(out):
        try:
            record = json.loads(line)
            assert isinstance(record, dict) and "key" in record
            whole.append(record)
        except (ValueError, AssertionError):
            corrupt += 1
    return whole, corrupt


def after_failure(found: list[dict]) -> Counter:
    """Of the runs with a failed record (a worker killed under them): how many there were
    (``failed_runs``), how many later ended ok (``ended_ok``) and how many of those continued
    from their checkpoint (``resumed``: their ok record says ``resumed_from_epoch``)."""
    failed = {r["key"] for r in found if r["status"] != "ok"}
    ok = {r["key"]: r for r in found if r["status"] == "ok" and r["key"] in failed}
    return Counter(failed_runs=len(failed), ended_ok=len(ok),
                   resumed=sum("resumed_from_epoch" in r for r in ok.values()))


def fingerprint(record: dict) -> list[dict]:
    """A run's epochs without their times: what must equal an uninterrupted run's."""
    return [{k: v for k, v in epoch.items() if not k.endswith("_time_s")}
            for epoch in record["epochs"]]


def invoke(suite: Path, out: Path, kills: Counter, tally: Counter, chance: random.Random,
           reference_s: float, kills_left: int) -> int:
    """One invocation of the suite, hit by one random fault while kills are left; its exit code."""
    driver = subprocess.Popen(command(suite, out), start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if kills_left <= 0:
        return driver.wait()
    kind = chance.choice(KINDS)
    time.sleep(chance.uniform(0.2, reference_s * 0.6))
    if kind == "worker":  # one that has a run: wait until both are up and one has trained
        _wait_for(lambda: len(workers_of(driver.pid)) == 2 or driver.poll() is not None)
        _wait_for(lambda: any((out / "checkpoints").glob("*.pt")) or driver.poll() is not None)
    workers = workers_of(driver.pid)
    if driver.poll() is not None:
        return driver.wait()
    if kind == "worker":
        os.kill(chance.choice(workers), signal.SIGKILL)
    elif kind == "driver":
        driver.kill()
        driver.wait()
        time.sleep(10)
        tally["orphans"] += sum(alive(pid) for pid in workers)
    else:
        os.killpg(driver.pid, signal.SIGINT)
    kills[kind] += 1
    return driver.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=20, help="a multiple of 5 (five families)")
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    chance = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        suite = root / "chaos.yaml"
        suite.write_text(SUITE.format(seeds=args.runs // 5, epochs=args.epochs))
        start = time.perf_counter()
        subprocess.run(command(suite, root / "reference"), check=True)
        reference_s = time.perf_counter() - start
        reference = {r["key"]: fingerprint(r) for r in records(root / "reference")[0]}

        kills: Counter[str] = Counter()
        tally: Counter[str] = Counter()
        invocations = rounds = 0
        while sum(kills.values()) < args.kills:  # a round: one fresh directory, run to the end
            rounds += 1
            out, ever_ok = root / f"chaos{rounds}", set()
            while True:
                invocations += 1
                code = invoke(suite, out, kills, tally, chance, reference_s,
                              args.kills - sum(kills.values()))
                ok_now = {r["key"] for r in records(out)[0] if r["status"] == "ok"}
                tally["lost"] += len(ever_ok - ok_now)
                ever_ok |= ok_now
                if code == 0:
                    break
                if invocations > 10 * args.kills + 10:
                    raise SystemExit("the suite did not finish: something is stuck")
            found, corrupt = records(out)
            ok = [r for r in found if r["status"] == "ok"]
            standing = {r["key"]: r for r in ok}
            tally["duplicated"] += sum(n - 1 for n in Counter(r["key"] for r in ok).values() if n > 1)
            tally["lost"] += len(set(reference) - set(standing))
            tally["corrupt"] += corrupt
            tally["failed"] += sum(r["status"] != "ok" for r in found)
            tally.update(after_failure(found))
            tally["differ"] += sum(fingerprint(r) != reference.get(key) for key, r in standing.items())
            tally["runs"] += len(standing)

    print(f"{len(reference)} runs × {args.epochs} epochs, local executor with 2 workers; "
          f"reference {reference_s:.1f} s; {rounds} rounds, {invocations} invocations")
    print(f"kills survived      : {sum(kills.values())} ({', '.join(f'{k} {kills[k]}' for k in KINDS)})")
    print(f"orphaned workers    : {tally['orphans']}")
    print(f"records lost        : {tally['lost']}")
    print(f"records duplicated  : {tally['duplicated']}")
    print(f"records corrupt     : {tally['corrupt']}")
    print(f"failed records      : {tally['failed']} (worker_died, kept as history), of "
          f"{tally['failed_runs']} runs: {tally['ended_ok']} of them ended ok, "
          f"{tally['resumed']} resumed from their checkpoint")
    print(f"epochs != reference : {tally['differ']} of {tally['runs']} runs")


if __name__ == "__main__":
    main()
