#!/usr/bin/env python3
"""Renders a bench/run.sh results directory as docs/benchmarks.md and docs/img/bench-*.svg.

    python3 bench/report.py RESULTS_DIR DOCS_DIR

Reads the `bench` tool's JSON reports (<label>-<scenario>-<time>.json), wrk's lines
(wrk-<label>.jsonl), the funnel ceiling (ceiling.jsonl, bench/ceiling.sh) and machine.env;
writes plain SVG by hand (no plotting library).
"""

import glob
import json
import math
import os
import sys
from html import escape

DEPLOYMENTS = ["sqlite", "postgres", "split"]
NAMES = {
    "sqlite": "single binary, SQLite",
    "postgres": "single binary, PostgreSQL + Redis + RabbitMQ",
    "split": "split behind the gateway",
}
COLORS = ["#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#a463f2"]


def load(results):
    reports = []
    for path in sorted(glob.glob(os.path.join(results, "*.json"))):
        with open(path) as f:
            reports.append(json.load(f))
    wrk = {}
    for path in glob.glob(os.path.join(results, "wrk-*.jsonl")):
        with open(path) as f:
            for line in f:
                w = json.loads(line)
                wrk.setdefault(w["label"], []).append(w)
    rss = {}
    for path in glob.glob(os.path.join(results, "rss-*.kib")):
        label, _, scenario = os.path.basename(path)[len("rss-"):-len(".kib")].partition("-")
        with open(path) as f:
            rss[(label, scenario)] = int(f.read().strip() or 0)
    ceilings = {}
    path = os.path.join(results, "ceiling.jsonl")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                c = json.loads(line)
                ceilings.setdefault(c["backend"], []).append(c)
    machine = {}
    env = os.path.join(results, "machine.env")
    if os.path.exists(env):
        with open(env) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                # Runs that add to one results directory each append their lines: every
                # command is kept, the other facts are the last run's.
                if k == "command":
                    machine.setdefault("commands", []).append(v)
                machine[k] = v
    return reports, wrk, rss, ceilings, machine


def one(reports, label, scenario):
    """The last report of a scenario for a deployment."""
    found = [r for r in reports if r["label"] == label and r["scenario"] == scenario]
    return found[-1] if found else None


def row(report, name):
    if report is None:
        return None
    return next((r for r in report["rows"] if r["name"] == name), None)


def fmt(v, digits=0):
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def passed(report):
    if report is None:
        return "–"
    failed = [c["name"] for c in report["checks"] if not c["passed"]]
    return "pass" if not failed else "**FAIL**: " + "; ".join(failed)


def summary(reports, wrk, rss, ceilings, labels):
    """Metric rows × deployment columns: the figures issue 16 asks about."""
    lines = []

    def add(metric, values):
        lines.append(f"| {metric} | " + " | ".join(values) + " |")

    def per(label, scenario, name, key, digits=0):
        r = row(one(reports, label, scenario), name)
        return fmt(r[key], digits) if r else "–"

    def ceiling(label):
        r = row(one(reports, label, "ceiling"), "GET /health/live")
        return r["per_second"] if r else None

    def share(label, scenario, name):
        r, c = row(one(reports, label, scenario), name), ceiling(label)
        if not r or not c:
            return "–"
        return f"{r['per_second']:,.0f} ({100 * r['per_second'] / c:.0f} %)"

    def fact(label, scenario, key, digits=2):
        rep = one(reports, label, scenario)
        if rep is None or rep["facts"].get(key) is None:
            return "–"
        return fmt(rep["facts"][key], digits)

    def wrk_rate(label, suffix):
        w = [x for x in wrk.get(label, []) if x["url"].endswith(suffix)]
        return w[-1]["per_second"] if w else None

    def wrk_of(label, suffix):
        rate = wrk_rate(label, suffix)
        if rate is None:
            return "–"
        top = wrk_rate(label, "/health/live")
        return f"{rate:,.0f}" + (f" ({100 * rate / top:.0f} %)" if top and not suffix.endswith("/health/live") else "")

    lines.append("| scenario | " + " | ".join(NAMES.get(l, l) for l in labels) + " |")
    lines.append("|---|" + "---:|" * len(labels))
    add("ceiling `GET /health/live`, req/s (bench)", [per(l, "ceiling", "GET /health/live", "per_second") for l in labels])
    add("ceiling, req/s (wrk -t2)", [wrk_of(l, "/health/live") for l in labels])
    add("catalog list, req/s (% of ceiling)", [share(l, "catalog", "GET /api/movies/movies") for l in labels])
    add("catalog list, req/s (wrk -t2, % of wrk's ceiling)", [wrk_of(l, "/api/movies/movies") for l in labels])
    add("catalog search `q`, req/s (% of ceiling)", [share(l, "catalog", "GET /api/movies/movies?q=") for l in labels])
    seat = "GET /showtimes/{id}/seats"
    add("seat map, req/s", [per(l, "seatmap", seat, "per_second") for l in labels])
    add("seat map, p50 / p99 ms", [f"{per(l, 'seatmap', seat, 'p50_ms', 1)} / {per(l, 'seatmap', seat, 'p99_ms', 1)}" for l in labels])
    add("seat map sends an ETag", [fact(l, "seatmap", "etag") for l in labels])
    race = "POST /book (same seat)"
    add("race: p50 / p99 ms", [f"{per(l, 'race', race, 'p50_ms', 1)} / {per(l, 'race', race, 'p99_ms', 1)}" for l in labels])
    add("race: checks", [passed(one(reports, l, "race")) for l in labels])
    add("flash: set-up (users registered), s", [fact(l, "flash", "setup_seconds") for l in labels])
    add("flash: sold out, s", [fact(l, "flash", "sold_out_seconds") for l in labels])
    add("flash: book p50 / p99 / max ms", [
        f"{per(l, 'flash', 'POST /book', 'p50_ms', 1)} / {per(l, 'flash', 'POST /book', 'p99_ms', 1)} / {per(l, 'flash', 'POST /book', 'max_ms', 1)}"
        for l in labels])
    add("flash: pay p50 / p99 ms", [f"{per(l, 'flash', 'POST /pay', 'p50_ms', 1)} / {per(l, 'flash', 'POST /pay', 'p99_ms', 1)}" for l in labels])

    def fives(label):
        rep = one(reports, label, "flash")
        if rep is None:
            return "–"
        return str(sum(n for r in rep["rows"] for s, n in r["answers"].items() if s.startswith("5")))

    add("flash: 5xx", [fives(l) for l in labels])
    add("flash: checks (audit included)", [passed(one(reports, l, "flash")) for l in labels])

    def crowd(label):
        """The flash sale's run with every buyer connected at once (`label@<connections>`)."""
        found = [r for r in reports if r["label"].startswith(label + "@") and r["scenario"] == "flash"]
        return found[-1] if found else None

    def crowd_row(label):
        rep = crowd(label)
        if rep is None:
            return "–"
        book = row(rep, "POST /book")
        five = sum(n for r in rep["rows"] for s, n in r["answers"].items() if s.startswith("5"))
        return (f"{rep['parameters']['clients']:,}: sold out {fmt(rep['facts'].get('sold_out_seconds'), 2)} s, "
                f"book p99 {fmt(book['p99_ms'], 1)} ms, {five} × 5xx, {passed(rep)}")

    add("flash with every buyer at once: connections, sold out, book p99, 5xx, checks", [crowd_row(l) for l in labels])
    add("funnel: completed/s", [fact(l, "funnel", "completed_per_second", 1) for l in labels])
    add("funnel: book p50 / p99 ms", [f"{per(l, 'funnel', 'POST /book', 'p50_ms', 1)} / {per(l, 'funnel', 'POST /book', 'p99_ms', 1)}" for l in labels])
    add("funnel: pay p50 / p99 ms", [f"{per(l, 'funnel', 'POST /pay', 'p50_ms', 1)} / {per(l, 'funnel', 'POST /pay', 'p99_ms', 1)}" for l in labels])
    add("funnel: pay → confirmed p50 / p99 ms", [
        f"{per(l, 'funnel', 'pay → confirmed (wait)', 'p50_ms', 1)} / {per(l, 'funnel', 'pay → confirmed (wait)', 'p99_ms', 1)}"
        for l in labels])
    add("funnel: checks", [passed(one(reports, l, "funnel")) for l in labels])

    def replayed(label):
        """The best replay rate of the deployment's database, of every client count tried."""
        runs = ceilings.get("sqlite" if label == "sqlite" else "postgres")
        return max(runs, key=lambda c: c["per_second"]) if runs else None

    def of_ceiling(label):
        c, rep = replayed(label), one(reports, label, "funnel")
        if not c or rep is None or rep["facts"].get("completed_per_second") is None:
            return "–"
        return f"{100 * rep['facts']['completed_per_second'] / c['per_second']:.0f} %"

    add("funnel ceiling: one booking's statements replayed, completed/s ([below](#funnel-ceiling))",
        [fmt(replayed(l)["per_second"], 1) if replayed(l) else "–" for l in labels])
    add("funnel: share of that ceiling", [of_ceiling(l) for l in labels])

    def peak(label, scenario):
        kib = rss.get((label, scenario))
        return f"{kib / 1024:,.0f}" if kib else "–"

    add("peak RSS of the servers during flash, MB", [peak(l, "flash") for l in labels])
    add("peak RSS of the servers during funnel, MB", [peak(l, "funnel") for l in labels])
    return "\n".join(lines)


# --- SVG -------------------------------------------------------------------------------------

def svg(width, height, body):
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">\n'
            f'<rect width="{width}" height="{height}" fill="white"/>\n{body}</svg>\n')


def panels(title, panels_data, series, unit):
    """Horizontal bars: one panel per measure (its own scale), a bar per series in each group.

    panels_data: [(panel title, [(group, {series: value})])]"""
    left, width, bar, gap = 190, 460, 14, 10
    y = 40
    parts = [f'<text x="10" y="22" font-size="15" font-weight="bold">{escape(title)}</text>']
    # The legend one entry a line: deployment names are long.
    for i, s in enumerate(series):
        parts.append(f'<rect x="{left}" y="{30 + i * 16}" width="10" height="10" fill="{COLORS[i % len(COLORS)]}"/>'
                     f'<text x="{left + 14}" y="{39 + i * 16}">{escape(s)}</text>')
    y += 16 * len(series) + 4
    for ptitle, groups in panels_data:
        values = [v for _, vs in groups for v in vs.values() if v is not None]
        if not values:
            continue
        top = max(values) * 1.15 or 1
        parts.append(f'<text x="10" y="{y + 12}" font-weight="bold">{escape(ptitle)}</text>')
        y += 20
        for group, vs in groups:
            n = sum(1 for s in series if vs.get(s) is not None)
            if n == 0:
                continue
            parts.append(f'<text x="{left - 8}" y="{y + n * bar / 2 + 4}" text-anchor="end">{escape(group)}</text>')
            for i, s in enumerate(series):
                v = vs.get(s)
                if v is None:
                    continue
                w = max(1, width * v / top)
                parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar - 2}" fill="{COLORS[i % len(COLORS)]}"/>'
                             f'<text x="{left + w + 4:.1f}" y="{y + bar - 4}" font-size="11">{v:,.1f} {escape(unit)}</text>')
                y += bar
            y += gap
        y += 6
    return svg(left + width + 120, y + 10, "\n".join(parts))


def line_chart(title, xlabel, ylabel, lines):
    """Lines over a log-scale x axis. lines: [(name, [(x, y)])]"""
    pts = [p for _, ps in lines for p in ps]
    if not pts:
        return None
    w, h, l, t, r, b = 560, 300, 70, 40, 150, 50
    xs = [math.log10(x) for x, _ in pts]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x1 = x0 + 1
    y1 = max(y for _, y in pts) * 1.15 or 1
    px = lambda x: l + (math.log10(x) - x0) / (x1 - x0) * (w - l - r)
    py = lambda y: t + (1 - y / y1) * (h - t - b)
    parts = [f'<text x="10" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
             f'<line x1="{l}" y1="{h - b}" x2="{w - r}" y2="{h - b}" stroke="black"/>',
             f'<line x1="{l}" y1="{t}" x2="{l}" y2="{h - b}" stroke="black"/>',
             f'<text x="{(l + w - r) / 2}" y="{h - 12}" text-anchor="middle">{escape(xlabel)} (log scale)</text>',
             f'<text x="14" y="{(t + h - b) / 2}" transform="rotate(-90 14 {(t + h - b) / 2})" text-anchor="middle">{escape(ylabel)}</text>']
    for k in range(5):
        v = y1 * k / 4
        parts.append(f'<text x="{l - 6}" y="{py(v) + 4:.1f}" text-anchor="end" font-size="10">{v:,.0f}</text>'
                     f'<line x1="{l}" y1="{py(v):.1f}" x2="{w - r}" y2="{py(v):.1f}" stroke="#ddd"/>')
    for x in sorted({x for x, _ in pts}):
        parts.append(f'<text x="{px(x):.1f}" y="{h - b + 15}" text-anchor="middle" font-size="10">{x:,}</text>')
    for i, (name, ps) in enumerate(lines):
        c = COLORS[i % len(COLORS)]
        ps = sorted(ps)
        parts.append('<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>'.format(
            c, " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in ps)))
        for x, y in ps:
            parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{c}"/>'
                         f'<text x="{px(x) + 5:.1f}" y="{py(y) - 5:.1f}" font-size="10">{y:,.0f}</text>')
        parts.append(f'<rect x="{w - r + 10}" y="{t + i * 18}" width="10" height="10" fill="{c}"/>'
                     f'<text x="{w - r + 24}" y="{t + i * 18 + 9}">{escape(name)}</text>')
    return svg(w, h, "\n".join(parts))


def plots(reports, labels, img):
    names = [NAMES.get(l, l) for l in labels]
    out = []

    def group(scenario, name, key, title):
        vals = {NAMES.get(l, l): (row(one(reports, l, scenario), name) or {}).get(key) for l in labels}
        return (title, [("", vals)])

    throughput = [
        group("ceiling", "GET /health/live", "per_second", "ceiling, GET /health/live (req/s)"),
        group("catalog", "GET /api/movies/movies", "per_second", "catalog list (req/s)"),
        group("catalog", "GET /api/movies/movies?q=", "per_second", "catalog search (req/s)"),
        group("seatmap", "GET /showtimes/{id}/seats", "per_second", "seat map (req/s)"),
    ]
    throughput.append(("funnel: book → pay → confirmed (completed/s)",
                       [("", {NAMES.get(l, l): (one(reports, l, "funnel") or {"facts": {}})["facts"].get("completed_per_second")
                              for l in labels})]))
    path = os.path.join(img, "bench-throughput.svg")
    with open(path, "w") as f:
        f.write(panels("Throughput per deployment (bench tool, same machine)", throughput, names, "/s"))
    out.append(("Throughput per deployment", "bench-throughput.svg"))

    latency = []
    for scenario, name, title in [
        ("flash", "POST /book", "flash: POST /book"), ("flash", "POST /pay", "flash: POST /pay"),
        ("funnel", "POST /book", "funnel: POST /book"), ("funnel", "POST /pay", "funnel: POST /pay"),
        ("funnel", "pay → confirmed (wait)", "funnel: pay → confirmed"),
        ("race", "POST /book (same seat)", "race: POST /book"),
        ("seatmap", "GET /showtimes/{id}/seats", "seat map GET"),
    ]:
        groups = []
        for l in labels:
            r = row(one(reports, l, scenario), name)
            if r:
                groups.append((NAMES.get(l, l), {"p50": r["p50_ms"], "p90": r["p90_ms"], "p99": r["p99_ms"]}))
        if groups:
            latency.append((title + " (ms)", groups))
    with open(os.path.join(img, "bench-latency.svg"), "w") as f:
        f.write(panels("Latency percentiles (ms)", latency, ["p50", "p90", "p99"], "ms"))
    out.append(("Latency percentiles", "bench-latency.svg"))

    curve = [r for r in reports if r["label"] == "curve"]
    specs = [
        ("bench-curve-seatmap.svg", "Seat map by theater size", "seats", "req/s", "seatmap", "seats",
         [("GET seat map, req/s", "GET /showtimes/{id}/seats", "per_second")]),
        ("bench-curve-catalog.svg", "Catalog by size", "movies", "req/s", "catalog", "catalog_movies",
         [("list, req/s", "GET /api/movies/movies", "per_second"), ("search, req/s", "GET /api/movies/movies?q=", "per_second")]),
        ("bench-curve-flash.svg", "Flash sale by registered users", "users", "ms", "flash", "users",
         [("book p99 ms", "POST /book", "p99_ms"), ("pay p99 ms", "POST /pay", "p99_ms")]),
    ]
    for file, title, xlabel, ylabel, scenario, xkey, series in specs:
        reps = [r for r in curve if r["scenario"] == scenario]
        lines = []
        for sname, rname, key in series:
            ps = []
            for r in reps:
                x = r["parameters"].get(xkey, r["facts"].get(xkey))
                rr = row(r, rname)
                if x and rr:
                    ps.append((x, rr[key]))
            if ps:
                lines.append((sname, ps))
        chart = line_chart(title, xlabel, ylabel, lines)
        if chart:
            with open(os.path.join(img, file), "w") as f:
                f.write(chart)
            out.append((title, file))
    return out


def ceiling_section(ceilings):
    md = ["## Funnel ceiling", ""]
    if not ceilings:
        return md + ["Not in this run: `bash bench/run.sh ceiling` (bench/ceiling.sh) measures it.", ""]
    md += ["`bench/ceiling.sh` records every statement the single binary on PostgreSQL + Redis + RabbitMQ",
           "makes for one booking (book, pay, the events' consumers, both e-mails), then replays them, every",
           "id fresh, from 4, 16 and 64 clients, as fast as the database takes them: with pgbench on",
           "PostgreSQL, and from two Python processes on the modules' SQLite files. One replay",
           "is one completed booking. HTTP, JSON, Redis, RabbitMQ and the service code cost nothing there:",
           "it is what the databases alone allow on this machine.", "",
           "| backend | clients | completed/s | transactions per booking (writing) | statements |",
           "|---|---:|---:|---:|---:|"]
    pg = ceilings.get("postgres", [{}])[-1]
    for name, runs in sorted(ceilings.items()):
        for c in runs:
            md.append(f"| {name} | {c.get('clients', '–')} | {c['per_second']:,.1f} | {c['transactions_per_booking']} "
                      f"({pg.get('writing_transactions_per_booking', '–')}) | {pg.get('statements_per_booking', '–')} |")
    modules = ", ".join(f"{m} {n}" for m, n in sorted(pg.get("by_module", {}).items()))
    md += ["", f"The booking's transactions by module: {modules}. The summary's ceiling is each backend's best rate."]
    return md + [""]


def tool_share(reports, wrk):
    """The bench tool's ceiling as a share of wrk's, over the deployments that have both."""
    shares = []
    for label, lines in wrk.items():
        tool = row(one(reports, label, "ceiling"), "GET /health/live")
        top = [w["per_second"] for w in lines if w["url"].endswith("/health/live")]
        if tool and top:
            shares.append(100 * tool["per_second"] / top[-1])
    return f"{min(shares):.0f}–{max(shares):.0f} %" if shares else "below that"


def markdown(reports, wrk, rss, ceilings, machine, charts):
    labels = [l for l in DEPLOYMENTS if any(r["label"] == l for r in reports)]
    md = ["# Benchmarks", "",
          "Generated by `bench/run.sh` (do not edit by hand: run it again). The load generator is the",
          "`bench` binary of the workspace (`bench/`, [performance](performance.md#the-benchmark-suite));",
          "it runs on the same cores as the servers, so these figures compare deployments and changes on",
          "one machine, they are not capacity. Each figure is one run; when a deployment ran more than once",
          "into one results directory, the summary shows its last run (every report is listed below).", "",
          "A Rust client that reads every answer costs more per request than wrk: the bench tool's own",
          f"ceiling is {tool_share(reports, wrk)} of wrk's in this run, so its ratios to the ceiling flatter the",
          "fast read routes. Compare a route with the ceiling measured by the same tool: wrk's rows for",
          "the cached catalog list, the bench tool's for the rest.", "",
          "## The run", "",
          f"- date: {machine.get('date', '?')}, commit {machine.get('commit', '?')}",
          f"- machine: {machine.get('nproc', '?')} cores ({machine.get('cpu', '?')}), {machine.get('memory_gib', '?')} GiB of memory; load generator, servers, PostgreSQL, Redis and RabbitMQ on the same cores",
          "- commands, in this order: " + "; ".join(f"`{c}`" for c in machine.get("commands", ["bash bench/run.sh"])),
          f"- Argon2 for registering the users: {machine.get('argon2', '?')}; the per-client request budget off (as behind a gateway); PostgreSQL `ANALYZE`d before each scenario (autovacuum is off on this machine)",
          "- the split runs one process per module (two of booking) behind nginx; the bench sends from 256 loopback addresses (`--sources`), since the gateway limits bookings and logins per address; its ceiling is the movie process's own `/health/live` (the gateway does not route `/health`)",
          "", "## Summary", "", summary(reports, wrk, rss, ceilings, labels), "",
          "Peak RSS is sampled every half second (`ps`), summed over the deployment's boxoffice processes (not the gateway, databases or broker).", ""]
    for title, file in charts:
        md += [f"![{title}](img/{file})", ""]
    for l in labels:
        md += [f"## {NAMES.get(l, l)}", ""]
        for r in [r for r in reports if r["label"] == l]:
            md += [md_report(r), ""]
        for w in wrk.get(l, []):
            path = "/" + w["url"].split("//", 1)[-1].split("/", 1)[-1]
            md.append(f"- wrk -t2 -c{w['clients']} `GET {path}`: {w['per_second']:,.0f} req/s, p50 {w['p50_ms']} ms, p99 {w['p99_ms']} ms, non-2xx {w['non_2xx']}")
        md.append("")
    crowds = [r for r in reports if "@" in r["label"]]
    if crowds:
        md += ["## The flash sale with every buyer at once", ""]
        for r in crowds:
            md += [f"{NAMES.get(r['label'].split('@')[0], r['label'])}:", "", md_report(r), ""]
    md += ceiling_section(ceilings)
    curve = [r for r in reports if r["label"] == "curve"]
    if curve:
        md += ["## Cost curves (single binary, SQLite)", ""]
        for r in curve:
            md += [md_report(r), ""]
    else:
        md += ["## Cost curves", "", "Not in this run: `bash bench/run.sh curves` measures the seat map at 54, 208,",
               "1,000 and 5,000 seats, the catalog at 10, 1,000 and 100,000 movies, and the flash sale at",
               "1,000, 10,000 and 50,000 users.", ""]
    return "\n".join(md)


def md_report(r):
    out = [f"### {r['scenario']}", "", f"`{json.dumps(r['parameters'], sort_keys=True)}`", "",
           "| request | count | per s | p50 ms | p90 ms | p99 ms | max ms | answers |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for x in r["rows"]:
        rate = f"{x['per_second']:,.0f}" if x["seconds"] > 0 else "–"
        answers = " ".join(f"{n}×{s}" for s, n in x["answers"].items())
        out.append(f"| {x['name']} | {x['requests']:,} | {rate} | {x['p50_ms']:.2f} | {x['p90_ms']:.2f} | {x['p99_ms']:.2f} | {x['max_ms']:.2f} | {answers} |")
    if r["facts"]:
        out.append("")
        out.append("; ".join(f"{k}: {v}" for k, v in sorted(r["facts"].items())))
    out.append("")
    for c in r["checks"]:
        out.append(f"- {'pass' if c['passed'] else '**FAIL**'} {c['name']}: {c['detail']}")
    for x in r["rows"]:
        for s in x["unexpected_samples"]:
            out.append(f"- unexpected answer to {x['name']}: `{s}`")
    return "\n".join(out)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    results, docs = sys.argv[1], sys.argv[2]
    reports, wrk, rss, ceilings, machine = load(results)
    if not reports:
        sys.exit(f"no reports in {results}")
    img = os.path.join(docs, "img")
    os.makedirs(img, exist_ok=True)
    charts = plots(reports, [l for l in DEPLOYMENTS if any(r["label"] == l for r in reports)], img)
    with open(os.path.join(docs, "benchmarks.md"), "w") as f:
        f.write(markdown(reports, wrk, rss, ceilings, machine, charts))


if __name__ == "__main__":
    main()
