"""Loading the generator's data into Quarry: Events API via quarry-load, OTLP via a hook."""

import json
import os
import subprocess
import time
from pathlib import Path

# The OTLP load tool (owned by the OTLP work) plugs in here: an executable
# benches/otlp-load/run taking `--url URL --events N --concurrency C --seed S
# --summary-json FILE` and writing at least {"events", "seconds"} to FILE.
OTLP_HOOK = Path(__file__).resolve().parent.parent / "otlp-load" / "run"


def run_quarry_load(binary: Path, url: str, args, end_time_s: int, summary_path: Path) -> dict:
    """Sends `args.events` events through POST /1/batch/{dataset}; returns quarry-load's summary."""
    cmd = [
        str(binary),
        "--url", url,
        "--events", str(args.events),
        "--concurrency", str(args.concurrency),
        "--batch-size", str(args.batch_size),
        "--seed", str(args.seed),
        "--window", args.window,
        "--end-time", str(end_time_s),
        "--summary-json", str(summary_path),
    ]
    if args.gzip:
        cmd.append("--gzip")
    if args.pregenerate:
        cmd.append("--pregenerate")
    started = time.monotonic()
    subprocess.run(cmd, check=True)
    summary = json.loads(summary_path.read_text())
    summary["command"] = " ".join(cmd)
    summary["wall_seconds_including_startup"] = time.monotonic() - started
    return summary


def describe(binary: Path, args, end_time_s: int) -> dict:
    """The scenario (services, deploys, anomaly) for these settings."""
    out = subprocess.run(
        [str(binary), "--describe", "--events", str(args.events), "--seed", str(args.seed),
         "--window", args.window, "--end-time", str(end_time_s)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def otlp_hook_available() -> bool:
    return OTLP_HOOK.is_file() and os.access(OTLP_HOOK, os.X_OK)


def run_otlp_load(url: str, args, summary_path: Path) -> dict:
    """Runs the OTLP load tool through its hook; returns its summary."""
    cmd = [
        str(OTLP_HOOK), "--url", url, "--events", str(args.otlp_events or args.events),
        "--concurrency", str(args.concurrency), "--seed", str(args.seed),
        "--summary-json", str(summary_path),
    ]
    subprocess.run(cmd, check=True)
    summary = json.loads(summary_path.read_text())
    summary["command"] = " ".join(cmd)
    return summary
