"""Issue 6's targets checked against a run's results, and the one table printed at the end."""

from __future__ import annotations

from typing import Any

TASK_PATH_P99_MS = 1.0
REDIS_SCALE = 1.7  # issue 11: deliveries/s with WEB_CONCURRENCY=2 on 2 cores, over one worker
REDIS_ADDED_P99_MS = 5.0
STORM_RATIO = 1.5


def _phase(results: dict[str, Any], section: str, server: str, streams: int | None = None) -> dict[str, Any]:
    for phase in results.get(section, []):
        if phase.get("server") == server and (streams is None or phase.get("streams") == streams):
            return phase
    return {}


def _ratio(alex: float | None, naive: float | None) -> float | None:
    return round(alex / naive, 3) if alex is not None and naive else None


def _row(metric: str, alex: Any, naive: Any, unit: str, target: str, met: bool | None, ratio: float | None = None):
    return {"metric": metric, "alex": alex, "naive": naive, "unit": unit, "ratio": ratio, "target": target,
            "met": met}


def _compare(metric: str, alex: Any, naive: Any, unit: str, bound: float, above: bool = False,
             versus: str = "naive") -> dict[str, Any]:
    """A row whose target is `alex/naive <= bound` (or `>=` when `above`)."""
    ratio = _ratio(alex, naive)
    met = None if ratio is None else (ratio >= bound if above else ratio <= bound)
    return _row(metric, alex, naive, unit, f"{'>=' if above else '<='} {bound:g}x {versus}", met, ratio)


def fanout_rows(results: dict[str, Any], streams: list[int]) -> list[dict[str, Any]]:
    """Latency, memory and CPU rows for every stream count; targets on the largest."""
    rows, largest = [], max(streams)
    for count in streams:
        alex, naive = _phase(results, "fanout", "alex", count), _phase(results, "fanout", "naive", count)
        at_largest = count == largest
        lat_a, lat_n = alex.get("latency", {}), naive.get("latency", {})
        rows.append(_row(f"p50 latency, {count} streams", lat_a.get("p50_ms"), lat_n.get("p50_ms"), "ms", "", None,
                         _ratio(lat_a.get("p50_ms"), lat_n.get("p50_ms"))))
        p99 = (f"p99 latency, {count} streams", lat_a.get("p99_ms"), lat_n.get("p99_ms"), "ms")
        rows.append(_compare(*p99, 0.5) if at_largest else _row(*p99, "", None, _ratio(*p99[1:3])))
        memory = (f"memory per open stream, {count} streams", alex.get("kb_per_stream"), naive.get("kb_per_stream"),
                  "KB")
        rows.append(_compare(*memory, 1.0) if at_largest else _row(*memory, "", None, _ratio(*memory[1:3])))
        cpu = (f"server CPU per delivery, {count} streams", alex.get("cpu_us_per_delivery"),
               naive.get("cpu_us_per_delivery"), "us")
        rows.append(_compare(*cpu, 0.5) if at_largest else _row(*cpu, "", None, _ratio(*cpu[1:3])))
    return rows


def throughput_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Back-to-back rate and CPU at the throughput phase's stream count."""
    alex, naive = _phase(results, "throughput", "alex"), _phase(results, "throughput", "naive")
    count = alex.get("streams") or naive.get("streams")
    return [
        _compare(f"deliveries/s, {count} streams, back-to-back", alex.get("deliveries_per_s"),
                 naive.get("deliveries_per_s"), "/s", 1.5, above=True),
        _row(f"server CPU per delivery, {count} streams, back-to-back", alex.get("cpu_us_per_delivery"),
             naive.get("cpu_us_per_delivery"), "us", "", None,
             _ratio(alex.get("cpu_us_per_delivery"), naive.get("cpu_us_per_delivery"))),
    ]


def health_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Zero loss, the hub never blocked, refusal beyond ALEX_MAX_STREAMS, tasks and the task path."""
    phases = results.get("fanout", []) + results.get("throughput", [])
    lost = {kind: sum(p.get("lost", 0) + p.get("streams", 0) - p.get("opened", p.get("streams", 0))
                      for p in phases if p.get("server") == kind) for kind in ("alex", "naive")}
    rows = [_row("events lost or streams not opened (all phases)", lost["alex"], lost["naive"], "", "alex = 0",
                 lost["alex"] == 0)]
    checks = results.get("hub_check", []) + ([results["tasks"]] if results.get("tasks", {}).get("hub_monitor") else [])
    if checks:
        blocked = {kind: sum(p.get("blocking_reports", 0) for p in checks if p.get("server") == kind)
                   for kind in ("alex", "naive")}
        rows.append(_row("gevent hub blocked > 10 ms: reports (hub check, tasks)", blocked["alex"], blocked["naive"],
                         "", "alex = 0", blocked["alex"] == 0))
    refusals = [p["refusal"] for p in results.get("fanout", []) if "refusal" in p]
    if refusals:
        rows.append(_row("stream beyond ALEX_MAX_STREAMS refused (503 overloaded)",
                         f"{sum(r['refused'] for r in refusals)}/{len(refusals)}", None, "", "all",
                         all(r["refused"] for r in refusals)))
    tasks = results.get("tasks")
    if tasks:
        rows.append(_row(f"{tasks['tasks']} concurrent tasks completed, nothing lost",
                         f"{tasks['completed']}/{tasks['tasks']}", None, "", "all",
                         tasks["completed"] == tasks["tasks"] and tasks["lost"] == 0))
    path = results.get("task_path", {}).get("concurrent_paced", {}).get("publish", {})
    if path:
        rows.append(_row(f"task-path per-event overhead p99 ({results['task_path']['concurrent_paced']['publishers']}"
                         " tasks)", path.get("p99_ms"), None, "ms", f"<= {TASK_PATH_P99_MS:g} ms",
                         path.get("p99_ms") is not None and path["p99_ms"] <= TASK_PATH_P99_MS))
    return rows


def build_rows(results: dict[str, Any], streams: list[int]) -> list[dict[str, Any]]:
    """Every row of the table, in print order."""
    return fanout_rows(results, streams) + throughput_rows(results) + health_rows(results)


def _pick(phases: list[dict[str, Any]], **wanted: Any) -> dict[str, Any]:
    return next((p for p in phases if all(p.get(k) == v for k, v in wanted.items())), {})


def redis_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 11's Redis mode: 2 workers against 1, the latency the Redis path adds, two servers on one Redis."""
    section = results.get("redis")
    if not section:
        return []
    two, one = _pick(section["scale"], workers=2), _pick(section["scale"], workers=1)
    count = two.get("streams") or one.get("streams")
    rows = [_compare(f"deliveries/s, {count} streams back-to-back: 2 workers vs 1 (both Redis; first to last "
                     "delivery)", two.get("deliveries_per_s_flowing"), one.get("deliveries_per_s_flowing"), "/s",
                     REDIS_SCALE, above=True, versus="1 worker"),
            _row("  same, from the task's post (start-up included)", two.get("deliveries_per_s"),
                 one.get("deliveries_per_s"), "/s", "", None, _ratio(two.get("deliveries_per_s"),
                                                                     one.get("deliveries_per_s"))),
            _row("  server CPU per delivery (all workers; load client's share in the JSON)",
                 two.get("cpu_us_per_delivery"), one.get("cpu_us_per_delivery"), "us", "", None,
                 _ratio(two.get("cpu_us_per_delivery"), one.get("cpu_us_per_delivery")))]
    on_redis, embedded = _pick(section["latency"], store="redis"), _pick(section["latency"], store="embedded")
    p99 = (on_redis.get("latency", {}).get("p99_ms"), embedded.get("latency", {}).get("p99_ms"))
    added = round(p99[0] - p99[1], 2) if None not in p99 else None
    streams = on_redis.get("streams") or embedded.get("streams")
    rows += [_row(f"p99 latency, {streams} streams: Redis vs embedded store (1 worker each)", *p99, "ms", "", None,
                  _ratio(*p99)),
             _row(f"p99 latency the Redis path adds, {streams} streams", added, None, "ms",
                  f"<= {REDIS_ADDED_P99_MS:g} ms", None if added is None else added <= REDIS_ADDED_P99_MS)]
    cross = section.get("cross_server", {})
    if cross:
        spread = cross["xadd_to_delivery"]
        rows += [_row(f"XADD to delivery, server A to B, p50 / p99 ({spread['samples']} events)",
                      f"{_cell(spread['p50_ms'])} / {_cell(spread['p99_ms'])}", None, "ms", "", None),
                 _row("Redis commands per event (two servers, one stream)", cross["redis_commands_per_event"], None,
                      "", "", None)]
    phases = section["scale"] + section["latency"] + ([cross] if cross else [])
    lost = sum(p.get("lost", 0) + p.get("streams", 0) - p.get("opened", p.get("streams", 0)) for p in phases)
    return rows + [_row("events lost or streams not opened (Redis phases)", lost, None, "", "0", lost == 0)]


def storm_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The reconnect storms: on the embedded store (one worker), and on Redis with two workers when it ran."""
    rows = _storm_rows(results.get("storm"), "")
    return rows + _storm_rows(results.get("redis", {}).get("storm"), " (Redis, 2 workers)")


def _storm_rows(storm: dict[str, Any] | None, where: str) -> list[dict[str, Any]]:
    """Every client resumed exactly, and how long it took against N fresh naive connections."""
    if not storm:
        return []
    alex, naive = storm["alex"], storm["naive"]
    clients = alex["clients"]
    exact = clients - alex["not_resumed"] if not (alex["lost"] or alex["duplicated_or_disordered_streams"]) else 0
    return [
        _row(f"reconnect storm{where}: {clients} clients resumed exactly (nothing lost, no duplicate)",
             f"{exact}/{clients}", None, "", "all", exact == clients and alex["streams_ended"] == clients),
        _compare(f"reconnect storm{where}, {clients} clients: all resumed (alex) vs all connected (naive)",
                 alex["done_s"], naive["open_s"], "s", STORM_RATIO),
        _row(f"reconnect storm{where}, {clients} clients: all connected", alex["open_s"], naive["open_s"], "s", "",
             None, _ratio(alex["open_s"], naive["open_s"])),
        _row(f"reconnect storm{where}: server CPU per stream", _per(alex["cpu_s"], clients),
             _per(naive["cpu_s"], clients), "ms", "", None, _ratio(alex["cpu_s"], naive["cpu_s"])),
    ]


def _per(cpu_s: float, count: int) -> float:
    return round(1000 * cpu_s / count, 3)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render(rows: list[dict[str, Any]], baseline: str = "naive") -> str:
    """The rows as a fixed-width text table."""
    header = ("metric", "alex", baseline, f"alex/{baseline}", "target", "met")
    lines = [(r["metric"] + (f" ({r['unit']})" if r["unit"] else ""), _cell(r["alex"]), _cell(r["naive"]),
              _cell(r["ratio"]), r["target"], {True: "yes", False: "NO", None: ""}[r["met"]]) for r in rows]
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*line)
                                                                                       for line in lines])
