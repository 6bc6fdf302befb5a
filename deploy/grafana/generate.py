#!/usr/bin/env python3
"""Writes deploy/grafana/vidq.json, the vidq Grafana dashboard (import it, pick the Prometheus
data source). Edit the panels here and run `python3 deploy/grafana/generate.py`.

Every query names only metric families the worker registers (crates/vidq-worker/src/telemetry.rs);
tests/tests/ecosystem.rs checks that, and runs each query on a real Prometheus scraping a worker.
"""

import json
from pathlib import Path

DS = {"type": "prometheus", "uid": "${datasource}"}
PANELS = []


def row(title):
    PANELS.append({"type": "row", "title": title, "collapsed": False, "panels": []})


def panel(title, description, targets, unit="short", kind="timeseries", width=8):
    PANELS.append({
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if kind == "timeseries" else {},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
        "_width": width,
    })


row("Queues")
panel("Queue depth (due and leased)", "Tasks waiting to run now and running, per queue (the same gauge on every worker: max).",
      [('max by (queue, state) (vidq_queue_depth{state=~"due|leased"})', "{{queue}} {{state}}")])
panel("Scheduled tasks", "Tasks waiting for a later time (mostly polls between two status checks).",
      [('max by (queue) (vidq_queue_depth{state="scheduled"})', "{{queue}}")])
panel("Dead tasks", "Tasks whose attempts are exhausted; alert VidqDeadTasksGrowing.",
      [('max by (queue) (vidq_queue_depth{state="dead"})', "{{queue}}")])

row("Jobs")
panel("Unfinished jobs by state", "Jobs in each unfinished state, read from Redis.",
      [("max by (state) (vidq_jobs)", "{{state}}")])
panel("Job outcomes", "Jobs ended per second by final state (expired: past their deadline, alert VidqJobsExpiredPastDeadline).",
      [("sum by (state) (rate(vidq_jobs_finished_total[$__rate_interval]))", "{{state}}")], unit="ops")
panel("Poll lateness", "How late polls run after their due time.",
      [("histogram_quantile(0.5, sum by (le) (rate(vidq_poll_lateness_seconds_bucket[$__rate_interval])))", "p50"),
       ("histogram_quantile(0.99, sum by (le) (rate(vidq_poll_lateness_seconds_bucket[$__rate_interval])))", "p99")], unit="s")
panel("Task duration p95", "Time a task took, by kind.",
      [("histogram_quantile(0.95, sum by (le, kind) (rate(vidq_task_duration_seconds_bucket[$__rate_interval])))", "{{kind}}")], unit="s")
panel("Stuck jobs re-enqueued", "Jobs without a pending task that the reconciler re-enqueued, by task kind.",
      [("sum by (kind) (increase(vidq_reconciler_requeued_total[$__rate_interval]))", "{{kind}}")])

row("Upstream (GoEnhanceAI)")
panel("Upstream calls", "Calls per second by endpoint and outcome.",
      [("sum by (endpoint, outcome) (rate(vidq_upstream_calls_total[$__rate_interval]))", "{{endpoint}} {{outcome}}")], unit="reqps")
panel("Upstream error ratio", "Share of calls with any outcome but ok; alert VidqUpstreamErrorRate above 10%.",
      [('sum(rate(vidq_upstream_calls_total{outcome!="ok"}[$__rate_interval])) / sum(rate(vidq_upstream_calls_total[$__rate_interval]))', "errors")],
      unit="percentunit")
panel("Calls deferred by shared limits", "Upstream calls held back by a cluster-wide limit, by reason.",
      [("sum by (reason) (rate(vidq_limit_deferrals_total[$__rate_interval]))", "{{reason}}")], unit="ops")
panel("Credits", "Upstream credit balance as last read; alert VidqCreditsLow.",
      [("min(vidq_upstream_credits)", "balance")])
panel("Credits spent per hour", "Credits upstream charged over the last hour.",
      [("sum(increase(vidq_upstream_credits_spent_total[1h]))", "spent / h")])
panel("Unknown statuses", "Status answers with a status vidq does not know (treated as still running).",
      [("sum(increase(vidq_upstream_unknown_status_total[$__rate_interval]))", "unknown")])

row("Submissions and transfers")
panel("Submissions", "Jobs upstream accepted per second, and uncertain ones: repeated after an unconfirmed attempt (possible duplicates; alert VidqUncertainSubmissions).",
      [("sum(rate(vidq_submissions_total[$__rate_interval]))", "accepted"),
       ("sum(rate(vidq_uncertain_submissions_total[$__rate_interval]))", "uncertain")], unit="ops")
panel("Uncertain submissions (range)", "Submissions repeated without knowing whether upstream took the first, over the dashboard's range.",
      [("sum(increase(vidq_uncertain_submissions_total[$__range]))", "uncertain")], kind="stat")
panel("Unrecorded window p99", "From upstream's accepting reply to its job id stored: a crash inside it leaves a possible duplicate.",
      [("histogram_quantile(0.99, sum by (le) (rate(vidq_submission_unrecorded_seconds_bucket[$__rate_interval])))", "p99")], unit="s")
panel("Transfer throughput", "Video bytes downloaded from upstream per second (all workers).",
      [("sum(rate(vidq_bytes_transferred_total[$__rate_interval]))", "bytes/s")], unit="Bps")
panel("Redis data loss seen", "Times a worker saw Redis lose its data (epoch marker missing or changed).",
      [("sum(increase(vidq_redis_epoch_changes_total[$__rate_interval]))", "epoch changes")])

# Grid: rows full width, panels `_width` wide, 8 high.
x = y = 0
for i, p in enumerate(PANELS):
    p["id"] = i + 1
    if p["type"] == "row":
        if x:
            y += 8
        x = 0
        p["gridPos"] = {"h": 1, "w": 24, "x": 0, "y": y}
        y += 1
        continue
    w = p.pop("_width")
    if x + w > 24:
        x, y = 0, y + 8
    p["gridPos"] = {"h": 8, "w": w, "x": x, "y": y}
    x += w

dashboard = {
    "title": "vidq",
    "uid": "vidq",
    "description": "vidq workers: queues, jobs, upstream calls and credits, submissions and transfers.",
    "tags": ["vidq"],
    "timezone": "utc",
    "editable": True,
    "graphTooltip": 1,
    "schemaVersion": 39,
    "version": 1,
    "refresh": "30s",
    "time": {"from": "now-6h", "to": "now"},
    "templating": {"list": [{
        "name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
        "current": {}, "hide": 0, "refresh": 1, "options": [],
    }]},
    "annotations": {"list": []},
    "links": [],
    "panels": PANELS,
}
out = Path(__file__).resolve().parent / "vidq.json"
out.write_text(json.dumps(dashboard, indent=2) + "\n")
