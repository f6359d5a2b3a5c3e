"""The SLI report of the demo, read back from Prometheus with PromQL (the same queries the dashboard uses).

``collect(prom)`` returns plain data (JSON-able); ``render_text(data)`` prints it for a terminal. Counters and
histograms are read as their cumulative values since the collector started, i.e. over the whole demo run; the
dashboard (examples/grafana) and alerts (examples/prometheus) use ``rate(...[5m])`` forms of the same queries.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

TENANT = "llmotel_tenant_id"
REGION = "llmotel_server_region"
MODEL = "gen_ai_request_model"
REVISION = "llmotel_model_revision"
AGENT = "gen_ai_agent_name"
TTFT_BUCKETS = "llmotel_sli_time_to_first_token_seconds_bucket"

def jain_from_counters(selector: str = "") -> str:
    """Jain's index of per-tenant service per request from the mergeable counters, summed over every instance the
    selector matches. Not the fairness index (issue #18): it measures how much request sizes differ. The fairness
    index compares each waiting tenant's service with its water-filling fair share (QUERIES["pool_jain"], definitions
    in collector/README.md); this spread is kept only as a cross-check of the counters across a gateway tier."""
    x = (f"(sum by ({TENANT}) (llmotel_sli_tenant_service_total{selector})"
         f" / sum by ({TENANT}) (llmotel_sli_tenant_demand_total{selector}))")
    return f"(sum({x}))^2 / (count({x}) * sum({x} ^ 2))"


# Every query of the report, by name: printed under "where to look next" and reused by tests/e2e.
QUERIES: dict[str, str] = {
    "ttft_p50": f"histogram_quantile(0.5, sum by (le, {TENANT}, {REGION}) ({TTFT_BUCKETS}))",
    "ttft_p95": f"histogram_quantile(0.95, sum by (le, {TENANT}, {REGION}) ({TTFT_BUCKETS}))",
    "calls": f"sum by ({TENANT}, {REGION}) (llmotel_sli_time_to_first_token_seconds_count)",
    "phase_mean": "sum by (llmotel_phase_name, llmotel_phase_source) (llmotel_sli_phase_duration_seconds_sum)"
    " / sum by (llmotel_phase_name, llmotel_phase_source) (llmotel_sli_phase_duration_seconds_count)",
    "phase_count": "sum by (llmotel_phase_name, llmotel_phase_source) (llmotel_sli_phase_duration_seconds_count)",
    "cache_hit_ratio": f"sum by ({TENANT}) (llmotel_sli_cache_read_tokens_total)"
    f" / sum by ({TENANT}) (llmotel_sli_input_tokens_total)",
    "revisions": "llmotel_sli_revision_distinct",
    "revisions_per_region": f"count by ({MODEL}, {REGION}) (llmotel_sli_revision_distinct)",
    "revision_changes": f"sum by ({MODEL}, {REGION}) (llmotel_sli_revision_changes_total)",
    "adherence_mean": f"sum by ({AGENT}) (llmotel_sli_plan_adherence_sum)"
    f" / sum by ({AGENT}) (llmotel_sli_plan_adherence_count)",
    "adherence_runs": f"sum by ({AGENT}) (llmotel_sli_plan_adherence_count)",
    "plan_steps": f"sum by ({AGENT}, llmotel_sli_step_kind) (llmotel_sli_plan_steps_total)",
    # Fairness (collector/README.md, "Fairness"): Jain over service / water-filling fair share of the tenants that
    # waited, per shared pool (server, model, region) and fleet-wide; 1 when nobody waited.
    "jain": "llmotel_sli_fairness_jain_index_ratio",
    "pool_jain": f"min by (server_address, {MODEL}, {REGION}) (llmotel_sli_pool_fairness_jain_index_ratio)",
    # Per-request service spread from the counters (not fairness; see jain_from_counters).
    "jain_from_counters": jain_from_counters(),
    # Named noisy neighbours only (1): significant, above fair share, abnormal victim waits, persistent.
    "noisy_neighbor": "max without (instance, job) (llmotel_sli_noisy_neighbor_ratio) == 1",
    "blame_share": f"max by ({TENANT}) (llmotel_sli_tenant_blame_share_ratio)",
    # Per-call bounded slowdown max(1, TTFT / max(TTFT - queue, fairness.slowdown_floor)), worst pool and queue
    # source of each tenant.
    "slowdown": f"max by ({TENANT}) (llmotel_sli_tenant_slowdown_p95_ratio)",
    "slowdown_p50": f"max by ({TENANT}) (llmotel_sli_tenant_slowdown_p50_ratio)",
    "service_ratio": f"min by ({TENANT}) (llmotel_sli_tenant_service_ratio)",
    "service_share": "llmotel_sli_tenant_service_share_ratio",
    "demand_share": "llmotel_sli_tenant_demand_share_ratio",
    "energy_wh": f"sum by ({TENANT}) (llmotel_sli_energy_Wh_total)",
    "carbon_g": f"sum by ({TENANT}) (llmotel_sli_carbon_gCO2e_total)",
    # Cost: the collector's sum of llmotel.cost.usd (the SDK's price of each call; absent when the price is unknown).
    "cost_usd": f"sum by ({TENANT}) (llmotel_sli_cost_USD_total)",
    "cost_by_model": f"sum by ({TENANT}, {MODEL}, {REGION}) (llmotel_sli_cost_USD_total)",
    # The alerts of examples/prometheus/alerts.yaml, evaluated by the same Prometheus (stack.py loads them).
    "alerts_firing": 'ALERTS{alertstate="firing"}',
    "alerts_pending": 'ALERTS{alertstate="pending"}',
    "requests": f"sum by ({TENANT}, http_response_status_code, llmotel_response_truncated)"
    " (llmotel_sli_requests_total)",
}


class PromQL(Protocol):
    def query(self, promql: str) -> list[Any]: ...


# Labels of ALERTS that say which rule and which scrape an alert came from, not what it is about: left out of the
# labels shown next to the alert's name (the exporter's own job/instance/scope come back as exported_*/otel_scope_*).
_ALERT_META = {"__name__", "alertname", "alertstate", "severity", "job", "instance"}
_ALERT_META_PREFIXES = ("exported_", "otel_scope_")


def _is_meta(label: str) -> bool:
    return label in _ALERT_META or label.startswith(_ALERT_META_PREFIXES)


def _rows(prom: PromQL, name: str, *labels: str) -> list[dict[str, Any]]:
    out = []
    for s in prom.query(QUERIES[name]):
        if s.value != s.value:  # NaN: e.g. a quantile of an empty histogram
            continue
        out.append({**{k: s.labels.get(k, "") for k in labels}, "value": s.value})
    return sorted(out, key=lambda r: tuple(str(r[k]) for k in labels))


def collect(prom: PromQL, speed: float = 1.0) -> dict[str, Any]:
    """Every figure of the report, read from Prometheus. ``speed`` is the simulator's (noted, never applied)."""
    data: dict[str, Any] = {"speed": speed, "queries": QUERIES}
    data["ttft"] = _merge(
        {"p50": _rows(prom, "ttft_p50", TENANT, REGION), "p95": _rows(prom, "ttft_p95", TENANT, REGION),
         "calls": _rows(prom, "calls", TENANT, REGION)}, (TENANT, REGION))
    data["phases"] = _merge(
        {"mean_s": _rows(prom, "phase_mean", "llmotel_phase_name", "llmotel_phase_source"),
         "count": _rows(prom, "phase_count", "llmotel_phase_name", "llmotel_phase_source")},
        ("llmotel_phase_name", "llmotel_phase_source"))
    data["cache_hit_ratio"] = _rows(prom, "cache_hit_ratio", TENANT)
    data["revisions"] = _rows(prom, "revisions", MODEL, REGION, REVISION)
    data["revision_changes"] = _rows(prom, "revision_changes", MODEL, REGION)
    data["adherence"] = _merge(
        {"mean": _rows(prom, "adherence_mean", AGENT), "runs": _rows(prom, "adherence_runs", AGENT)}, (AGENT,))
    data["plan_steps"] = _rows(prom, "plan_steps", AGENT, "llmotel_sli_step_kind")
    jain = _rows(prom, "jain")
    data["jain"] = jain[0]["value"] if jain else None
    merged = _rows(prom, "jain_from_counters")
    data["jain_from_counters"] = merged[0]["value"] if merged else None
    data["pool_jain"] = _rows(prom, "pool_jain", "server_address", MODEL, REGION)
    data["noisy_neighbor"] = _rows(prom, "noisy_neighbor", TENANT, "server_address")
    data["tenants"] = _merge(
        {"slowdown": _rows(prom, "slowdown", TENANT), "slowdown_p50": _rows(prom, "slowdown_p50", TENANT),
         "blame_share": _rows(prom, "blame_share", TENANT), "service_ratio": _rows(prom, "service_ratio", TENANT),
         "service_share": _rows(prom, "service_share", TENANT),
         "demand_share": _rows(prom, "demand_share", TENANT), "energy_wh": _rows(prom, "energy_wh", TENANT),
         "carbon_g": _rows(prom, "carbon_g", TENANT), "cost_usd": _rows(prom, "cost_usd", TENANT),
         "cache_hit_ratio": data["cache_hit_ratio"]}, (TENANT,))
    data["requests"] = _rows(prom, "requests", TENANT, "http_response_status_code", "llmotel_response_truncated")
    data["cost"] = _rows(prom, "cost_by_model", TENANT, MODEL, REGION)
    data["alerts"] = collect_alerts(prom)
    return data


def collect_alerts(prom: PromQL, settle_s: float = 10.0) -> dict[str, Any]:
    """Which alerts fire and which are pending, from ALERTS (PromQL), with why: each alert's value and summary from
    the rules API when the client has it (stack.Prometheus.rules), and each rule's ``for``. An alert pending on a
    rule whose ``for`` is at most ``settle_s`` (the demo's shortened copy of the rules) is given that long plus
    two evaluations to fire before the report is taken; the shipped rules (minutes) are never waited for."""
    rules_of = getattr(prom, "rules", None)
    if callable(rules_of):
        holds = [float(r.get("duration", 0)) for r in rules_of()
                 if r.get("state") == "pending" and 0 < float(r.get("duration", 0)) <= settle_s]
        if holds:
            time.sleep(max(holds) + 2.5)
    firing = [_alert_labels(s.labels) for s in prom.query(QUERIES["alerts_firing"])]
    pending = [_alert_labels(s.labels) for s in prom.query(QUERIES["alerts_pending"])]
    details: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Any]] = {}
    rules: list[dict[str, Any]] = []
    if callable(rules_of):
        for rule in rules_of():
            for_s = float(rule.get("duration", 0))
            rules.append({"name": rule["name"], "for_s": for_s, "state": rule.get("state", "")})
            for a in rule.get("alerts", []):
                key = (rule["name"], _label_key(a.get("labels", {})))
                details[key] = {"value": a.get("value"), "active_at": a.get("activeAt"),
                                "summary": a.get("annotations", {}).get("summary", ""),
                                "for_s": for_s}
    for alert in firing + pending:
        alert.update(details.get((alert["alertname"], _label_key(alert["labels"])), {}))
    return {"firing": firing, "pending": pending, "rules": rules, "rules_note": getattr(prom, "rules_note", "")}


def _alert_labels(labels: dict[str, str]) -> dict[str, Any]:
    return {"alertname": labels.get("alertname", ""), "severity": labels.get("severity", ""),
            "labels": {k: v for k, v in labels.items() if not _is_meta(k)}}


def _label_key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if not _is_meta(k)))


def _merge(columns: dict[str, list[dict[str, Any]]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Join several label-keyed result lists into one row per key."""
    rows: dict[tuple[str, ...], dict[str, Any]] = {}
    for column, results in columns.items():
        for r in results:
            key = tuple(str(r[k]) for k in keys)
            rows.setdefault(key, {k: r[k] for k in keys})[column] = r["value"]
    return [rows[k] for k in sorted(rows)]


# -- text rendering ------------------------------------------------------------------------------------------------

def _ms(v: Any) -> str:
    return f"{v * 1000:7.0f} ms" if isinstance(v, (int, float)) else "      -   "


def _num(v: Any, fmt: str = "{:.2f}") -> str:
    return fmt.format(v) if isinstance(v, (int, float)) else "-"


def _tenant(name: str) -> str:
    return name or "(none)"


def render_text(data: dict[str, Any], prom_url: str = "", keep: bool = False) -> str:
    """The report as text: one section per SLI, each with the fact a reader should take away."""
    out: list[str] = []
    w = out.append
    speed = data.get("speed", 1.0)
    w("")
    w("=" * 100)
    w("llmotel SLI report — read back from Prometheus with PromQL")
    sent = data.get("sent")
    if sent:
        w(f"sent: {sent['llm_calls']} LLM calls, agent runs {sent['agent_runs']}; "
          f"durations are wall clock with the simulator at {speed:g}x real time")
    w("=" * 100)

    w("\nTime to first token by tenant and region")
    w(f"  {'tenant':<10} {'region':<14} {'calls':>6} {'p50':>10} {'p95':>10}")
    hidden = 0
    for r in data["ttft"]:
        if r.get("calls", 0) < 3:  # e.g. a client's warm-up call, routed to whichever region
            hidden += 1
            continue
        w(f"  {_tenant(r[TENANT]):<10} {r[REGION] or '?':<14} {int(r.get('calls', 0)):>6} "
          f"{_ms(r.get('p50'))} {_ms(r.get('p95'))}")
    if hidden:
        w(f"  ({hidden} rows with fewer than 3 calls not shown)")
    w("  region as each API reveals it: OpenAI-style responses by their cf-ray edge (IAD, DUB), Anthropic by"
      " usage.inference_geo (us, eu)")

    w("\nWhere the time went: mean phase duration (source = who measured it)")
    for r in data["phases"]:
        w(f"  {r['llmotel_phase_name']:<12} {r['llmotel_phase_source']:<10} {_ms(r.get('mean_s'))}"
          f"   ({int(r.get('count', 0))} calls)")

    w("\nFairness (window of the sidecar)")
    w(f"  fleet Jain's index {_num(data['jain'], '{:.3f}')} over service / fair share of the tenants that waited "
      "(1 = each got its water-filling share; 1 when nobody waited)")
    for r in data.get("pool_jain", []):
        w(f"  pool {r['server_address']} {r[MODEL]} {r[REGION]}: Jain {r['value']:.3f}")
    noisy = data["noisy_neighbor"]
    if noisy:
        for r in noisy:
            w(f"  noisy neighbour: {r[TENANT]!r} in pool {r.get('server_address', '')} (above its fair share, "
              "blame significant, victims' waits abnormal, persistent)")
    else:
        w("  noisy neighbour: nobody named")
    w(f"  {'tenant':<10} {'p95 slowdown':>13} {'blame':>6} {'service share':>14} {'demand share':>13} {'cache hit':>10}"
      f" {'energy Wh':>10} {'gCO2e':>8} {'cost USD':>9}")
    for r in data["tenants"]:
        w(f"  {_tenant(r[TENANT]):<10} {_num(r.get('slowdown'), '{:.2f}x'):>13} "
          f"{_num(r.get('blame_share'), '{:.0%}'):>6} "
          f"{_num(r.get('service_share'), '{:.1%}'):>14} {_num(r.get('demand_share'), '{:.1%}'):>13} "
          f"{_num(r.get('cache_hit_ratio'), '{:.1%}'):>10} {_num(r.get('energy_wh'), '{:.3f}'):>10} "
          f"{_num(r.get('carbon_g'), '{:.3f}'):>8} {_num(r.get('cost_usd'), '{:.4f}'):>9}")

    w("\nRevision drift: resolved revisions per (model, region) in the window")
    by_key: dict[tuple[str, str], list[str]] = {}
    for r in data["revisions"]:
        by_key.setdefault((r[MODEL], r[REGION]), []).append(r[REVISION])
    for (model, region), revs in sorted(by_key.items()):
        flag = "   <- DRIFT: more than one revision" if len(revs) > 1 else ""
        w(f"  {model:<20} {region:<14} {', '.join(sorted(revs))}{flag}")
    models: dict[str, set[str]] = {}
    for r in data["revisions"]:
        models.setdefault(r[MODEL], set()).add(r[REVISION])

    w("\nPlan adherence (LCS of executed vs announced tools / plan length)")
    steps: dict[str, dict[str, float]] = {}
    for r in data["plan_steps"]:
        steps.setdefault(r[AGENT], {})[r["llmotel_sli_step_kind"]] = r["value"]
    for r in data["adherence"]:
        kinds = ", ".join(f"{k} {int(v)}" for k, v in sorted(steps.get(r[AGENT], {}).items())) or "no deviations"
        w(f"  {r[AGENT]:<16} mean {_num(r.get('mean'))} over {int(r.get('runs', 0))} runs   ({kinds})")

    w("\nCalls by outcome")
    for r in data["requests"]:
        trunc = " truncated" if r["llmotel_response_truncated"] == "true" else ""
        w(f"  {_tenant(r[TENANT]):<10} HTTP {r['http_response_status_code'] or '?'}{trunc}: {int(r['value'])}")

    _render_cost(w, data)
    _render_alerts(w, data)

    w("\nWhere to look next")
    if keep and prom_url:
        w(f"  Prometheus: {prom_url}/graph  (try the queries below)")
    else:
        w("  make demo ARGS=--keep   keeps the stack up after the report, to query Prometheus yourself")
    w("  examples/grafana/llmotel-dashboard.json   the dashboard of these SLIs (import into Grafana)")
    w("  examples/prometheus/alerts.yaml           TTFT SLO burn rate, fairness, revision drift, truncation alerts"
      " (loaded by this Prometheus: ALERTS)")
    w("  docs/e2e.md                               what runs where, and every PromQL query of this report")
    w(f"  e.g. {QUERIES['ttft_p95']}")
    if data.get("wall_s"):
        w(f"\n(demo wall time {data['wall_s']:.0f} s)")
    return "\n".join(out)


def _render_cost(w: Any, data: dict[str, Any]) -> None:
    w("\nCost (llmotel.cost.usd of each call, summed by the collector: llmotel_sli_cost_USD_total)")
    rows = data.get("cost") or []
    if not rows:
        w("  no priced calls: the SDK sets llmotel.cost.usd only when it knows the model's price")
        return
    total = sum(r["value"] for r in rows)
    by_tenant: dict[str, float] = {}
    for r in rows:
        by_tenant[r[TENANT]] = by_tenant.get(r[TENANT], 0.0) + r["value"]
    w(f"  total ${total:.4f}; by tenant: " + ", ".join(
        f"{_tenant(t)} ${v:.4f} ({v / total:.0%})" if total else f"{_tenant(t)} ${v:.4f}"
        for t, v in sorted(by_tenant.items(), key=lambda kv: -kv[1])))
    for r in rows:
        w(f"  {_tenant(r[TENANT]):<10} {r[MODEL] or '?':<28} {r[REGION] or '?':<14} ${r['value']:.4f}")


def _duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def _render_alerts(w: Any, data: dict[str, Any]) -> None:
    alerts = data.get("alerts") or {}
    firing, pending = alerts.get("firing", []), alerts.get("pending", [])
    w(f"\nAlerts ({alerts.get('rules_note') or 'examples/prometheus/alerts.yaml'}, evaluated every second by this"
      " Prometheus)")
    if not firing:
        w("  firing: none")
    for a in firing:
        w(f"  FIRING  {a['alertname']} [{a['severity']}]{_where(a)}")
        if a.get("summary"):
            w(f"          why: {a['summary']} (value {_alert_value(a.get('value'))})")
    for a in pending:
        hold = f"; fires once true for {_duration(a['for_s'])}" if a.get("for_s") else ""
        w(f"  pending {a['alertname']} [{a['severity']}]{_where(a)}{hold}")
        if a.get("summary"):
            w(f"          why: {a['summary']}")
    quiet = sorted({r["name"] for r in alerts.get("rules", []) if r.get("state") == "inactive"})
    if quiet:
        w(f"  not triggered: {', '.join(quiet)}")


def _where(alert: dict[str, Any]) -> str:
    return "".join(f" {k}={v}" for k, v in sorted(alert["labels"].items()))


def _alert_value(v: Any) -> str:
    try:
        return f"{float(v):.3g}"
    except (TypeError, ValueError):
        return "?"
