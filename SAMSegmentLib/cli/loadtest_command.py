"""``samsegment loadtest``: simulated clinicians against an engine server, for 1, 2, 4... at once."""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import SAMSegmentError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "loadtest",
        help="simulated clinicians against an engine server (samsegment serve [--ray])",
        description=(
            "Each simulated clinician has its own session on the same volume: boxes and clicks with think "
            "time, then a propagation. For each client count: click-to-mask p50/p95, first mask on a fresh "
            "slice, propagation seconds per slice, errors and the server's peak memory; then the throughput "
            "of that many clients against one engine in this process, side by side. The token comes from "
            "--token-file or SAMSEGMENT_SERVER_TOKEN."
        ),
    )
    parser.add_argument("--url", default="http://127.0.0.1:8470", help="the server (default: this computer)")
    parser.add_argument("--token-file", type=Path, help="file holding the token (first one)")
    parser.add_argument("--clients", default="1,2,4,8", help="client counts, comma-separated (default 1,2,4,8)")
    parser.add_argument("--json", type=Path, required=True, help="write the report here")
    parser.add_argument("--image", type=Path, help="volume to segment (default: the shared CT, else a synthetic CT)")
    parser.add_argument("--labels", type=Path, help="label volume: the box surrounds --structure")
    parser.add_argument("--structure", help="structure of --labels to box (default: the largest)")
    parser.add_argument("--synthetic", action="store_true", help="a synthetic 512x512x64 CT instead of an image")
    parser.add_argument("--model", default="litemedsam")
    parser.add_argument("--device", default="auto", help="the server's device for the model")
    parser.add_argument("--slices", type=int, default=2, help="slices each clinician works on (default 2)")
    parser.add_argument("--clicks", type=int, default=3, help="refining clicks per slice (default 3)")
    parser.add_argument("--propagation-slices", type=int, default=4, help="slices propagated (default 4)")
    parser.add_argument("--think", type=float, default=1.0, help="seconds a clinician pauses before each action")
    parser.add_argument(
        "--throughput-clients", type=int, default=4, help="clients in the throughput comparison (0: none)"
    )
    parser.add_argument("--note", default="", help="recorded with the report (what else ran on the machine)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..atomic import write_text
    from ..bench.cases import image_case, synthetic_ct
    from ..bench.loadtest import LoadSettings, run_clients, run_in_process, server_health
    from ..bench.machine import describe_machine, load_average
    from ..datasets import shared_ct_dir
    from ..intensity import mapping_for
    from ..protocol.endpoints import Endpoint
    from ..worker import InferenceWorker

    counts = _client_counts(args.clients)
    endpoint = Endpoint(*_host_port(args.url), _token(args.token_file))
    case = _case(args, image_case, synthetic_ct, shared_ct_dir())
    intensity = mapping_for(case.volume)
    settings = LoadSettings(args.model, args.device, args.slices, args.clicks, args.propagation_slices, args.think)
    report: dict[str, object] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "url": args.url,
        "note": args.note,
        "volume": case.description,
        "volume_shape": list(case.volume.array.shape),
        "settings": {**vars(settings), "stop_rule": "engine default"},
        "machine": describe_machine(torch.device("cpu")),
        "load_average_before": load_average(),
        "server": server_health(endpoint),
        "runs": [],
    }
    runs: list[dict[str, object]] = report["runs"]  # type: ignore[assignment]
    for clients in counts:
        print(f"{clients} client(s)…", flush=True)
        result = run_clients(endpoint, case, intensity, settings, clients, args.think)
        result["server_peak_rss_mb_by_replica"] = server_health(endpoint)["peak_rss_mb_by_replica"]
        runs.append(result)
        _print_run(result)
        write_text(args.json, json.dumps(report, indent=2))  # a partial report survives an interruption
    if args.throughput_clients:
        clients = args.throughput_clients
        print(f"Throughput: {clients} clients, no think time, one engine in this process then the server…", flush=True)
        in_process = run_in_process(InferenceWorker, case, intensity, settings, clients)
        served = run_clients(endpoint, case, intensity, settings, clients, 0.0)
        report["throughput"] = {
            "clients": clients,
            "in_process_masks_per_s": in_process["masks_per_s"],
            "server_masks_per_s": served["masks_per_s"],
            "server_vs_in_process": round(served["masks_per_s"] / in_process["masks_per_s"], 3)  # type: ignore[operator]
            if in_process["masks_per_s"]
            else None,
            "in_process": in_process,
            "server": served,
            "how": "the same clinicians' work with no think time: one after the other by one InferenceWorker "
            "in the load test's process, then all at once against the server",
        }
        print(f"  in process {in_process['masks_per_s']} masks/s, server {served['masks_per_s']} masks/s", flush=True)
    report["load_average_after"] = load_average()
    write_text(args.json, json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    return 0


def _client_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SAMSegmentError(f"--clients must be numbers separated by commas, not {text!r}.") from None
    if not counts or min(counts) < 1:
        raise SAMSegmentError("--clients needs at least one count of 1 or more.")
    return counts


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise SAMSegmentError(f"--url must be http://host:port (TLS ends at the reverse proxy), not {url!r}.")
    return parts.hostname, parts.port or 80


def _token(token_file: Path | None) -> str:
    from ..service.launcher import TOKEN_ENVIRONMENT
    from ..service.routes import Tokens

    tokens = Tokens.configured(token_file)
    if tokens is None:
        raise SAMSegmentError(f"The load test needs the server's token: set {TOKEN_ENVIRONMENT} or pass --token-file.")
    return tokens.first()


def _case(args, image_case, synthetic_ct, shared_dir: Path):  # noqa: ANN001, ANN202
    if args.synthetic:
        return synthetic_ct()
    if args.image is not None:
        return image_case(args.image, args.labels, args.structure)
    if (shared_dir / "ct.nii.gz").exists():
        return image_case(shared_dir / "ct.nii.gz", shared_dir / "labels.nii.gz", args.structure)
    print(f"No image given and no shared CT in {shared_dir}: using a synthetic CT.", flush=True)
    return synthetic_ct()


def _print_run(result: dict[str, object]) -> None:
    clicks, first = result["click_to_mask_ms"], result["first_mask_ms"]
    print(
        f"  clicks p50 {clicks['p50']} ms p95 {clicks['p95']} ms; first mask p50 {first['p50']} ms; "  # type: ignore[index]
        f"propagation {result['propagation_s_per_slice']} s/slice; errors {result['errors']}; "
        f"{result['masks_per_s']} masks/s",
        flush=True,
    )
