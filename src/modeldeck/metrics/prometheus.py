"""Prometheus text exposition (format 0.0.4) of the gateway counters and the latest replica usage."""

from __future__ import annotations

from collections.abc import Iterable

from modeldeck.gateway.routes import RouteTable
from modeldeck.metrics.store import LATENCY_BOUNDS, MetricsStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Exposed histogram bounds: a subset of the internal ones, so cumulative counts stay exact.
EXPOSED_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
assert set(EXPOSED_BOUNDS) <= set(LATENCY_BOUNDS)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def _family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels} {_num(value)}" for labels, value in samples]
    return lines


def render(store: MetricsStore, routes: RouteTable) -> str:
    requests = sorted(list(store.requests.items()))
    lines: list[str] = []
    lines += _family(
        "modeldeck_gateway_requests_total", "counter", "HTTP requests answered by the gateway.",
        ((f'{{deployment="{_label(dep)}",code="{code}"}}', n)
         for dep, stats in requests for code, n in sorted(list(stats.codes.items()))),
    )
    hist = ["# HELP modeldeck_gateway_request_duration_seconds Time from request to the end of the response.",
            "# TYPE modeldeck_gateway_request_duration_seconds histogram"]
    for dep, stats in requests:
        buckets, label = list(stats.buckets), _label(dep)
        cumulative, i = 0, 0
        for bound in EXPOSED_BOUNDS:
            while LATENCY_BOUNDS[i] <= bound:
                cumulative += buckets[i]
                i += 1
            hist.append(f'modeldeck_gateway_request_duration_seconds_bucket{{deployment="{label}",le="{bound}"}}'
                        f" {cumulative}")
        total = sum(buckets)
        hist.append(f'modeldeck_gateway_request_duration_seconds_bucket{{deployment="{label}",le="+Inf"}} {total}')
        hist.append(f'modeldeck_gateway_request_duration_seconds_sum{{deployment="{label}"}} {stats.latency_sum!r}')
        hist.append(f'modeldeck_gateway_request_duration_seconds_count{{deployment="{label}"}} {total}')
    lines += hist

    route_list = sorted((r.deployment_id, r) for r in (routes.get(d) for d in routes.ids()) if r is not None)
    lines += _family(
        "modeldeck_deployment_replicas_available", "gauge", "Ready replicas the gateway routes to.",
        ((f'{{deployment="{_label(dep)}"}}', len(r.replicas)) for dep, r in route_list),
    )
    lines += _family(
        "modeldeck_deployment_replicas_desired", "gauge", "Replicas the deployment asks for (0 when stopped).",
        ((f'{{deployment="{_label(dep)}"}}', r.desired) for dep, r in route_list),
    )
    series = sorted(list(store.series.items()))
    lines += _family(
        "modeldeck_deployment_predictions_total", "counter",
        "Predictions (rows) answered by the deployment's replicas, as scraped from them.",
        ((f'{{deployment="{_label(dep)}"}}', s.predictions) for dep, s in series),
    )
    usage = sorted((dep, name, point) for dep, reps in list(store.replica_usage.items())
                   for name, point in reps.items())
    for name, attr, help_text in (
        ("modeldeck_replica_cpu_cores", "cpu", "CPU cores a replica uses."),
        ("modeldeck_replica_memory_bytes", "memory", "Resident memory of a replica."),
        ("modeldeck_replica_gpu_utilization_ratio", "gpu_utilization", "GPU utilisation of a replica (0..1)."),
        ("modeldeck_replica_gpu_memory_bytes", "gpu_memory", "GPU memory a replica uses."),
    ):
        samples = [(f'{{deployment="{_label(dep)}",replica="{_label(rep)}"}}', getattr(p, attr))
                   for dep, rep, p in usage if getattr(p, attr) is not None]
        lines += _family(name, "gauge", help_text, samples)
    return "\n".join(lines) + "\n"
