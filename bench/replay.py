#!/usr/bin/env python3
"""The funnel's physical ceiling: replays, as fast as the database takes them, exactly the
statements and commits the system made for one booking (bench/ceiling.sh records them).

  replay.py extract LOG IDLE PIDS OUT.json
                                        PostgreSQL's statement log (log_statement = all) of one
                                        booking, the log of as long a time idle, the pid →
                                        module map (`pid module` lines) → the transactions in
                                        order, each with its module
  replay.py pgbench IN.json PREFIX OUT  a pgbench script: every transaction, each id fresh
  replay.py sqlite IN.json DATA SECONDS CLIENTS
                                        the same on the modules' SQLite files in DATA, from
                                        CLIENTS threads in two processes; prints one JSON line

A transaction the idle server also made, statement for statement (a relay's or a sweeper's
poll), is not counted as the booking's, even where it found the booking's rows: the ceiling is,
if anything, high.
"""
import json
import multiprocessing
import re
import sqlite3
import sys
import threading
import time
import uuid

LINE = re.compile(r"^\S+ \S+ \S+ \[(\d+)\] \S*@\S* (LOG|DETAIL|ERROR|STATEMENT|HINT|WARNING|CONTEXT):  (.*)$")
PARAM = re.compile(r"\$(\d+) = (NULL|'(?:[^']|'')*')")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CONTROL = {"BEGIN", "COMMIT", "ROLLBACK"}


def entries(log):
    """(pid, kind, text) per log entry, continuation lines joined."""
    current = None
    for line in log:
        m = LINE.match(line.rstrip("\n"))
        if m:
            if current:
                yield current
            current = [m.group(1), m.group(2), m.group(3)]
        elif current:
            current[2] += "\n" + line.rstrip("\n")
    if current:
        yield current


def statements(log):
    """(pid, sql, params) in the log's order; params are SQL literals ('…' or NULL)."""
    pending = None
    for pid, kind, text in entries(log):
        if kind == "LOG" and (text.startswith("statement: ") or text.startswith("execute ")):
            if pending:
                yield pending
            sql = text.split(": ", 1)[1]
            pending = (pid, sql.strip(), {})
        elif kind == "DETAIL" and text.startswith("parameters: ") and pending and pending[0] == pid:
            pending[2].update({int(n): v for n, v in PARAM.findall(text)})
    if pending:
        yield pending


def bind(sql, params):
    # Highest numbers first: $1 must not eat the start of $12.
    for n in sorted(params, reverse=True):
        sql = sql.replace(f"${n}", params[n])
    return sql


def transactions(log_path, modules):
    """The log's transactions in commit order: {module, statements (bound), shape, end}."""
    open_txn, txns = {}, []
    with open(log_path, errors="replace") as log:
        for pid, sql, params in statements(log):
            if pid not in modules:
                continue
            word = sql.split(None, 1)[0].upper().rstrip(";")
            if word == "BEGIN":
                open_txn[pid] = []
            elif word in ("COMMIT", "ROLLBACK"):
                body = open_txn.pop(pid, None)
                if body is not None:
                    txns.append({"module": modules[pid], "statements": [b for _, b in body],
                                 "shape": [s for s, _ in body], "end": word})
            elif pid in open_txn:
                open_txn[pid].append((sql, bind(sql, params)))
            else:
                txns.append({"module": modules[pid], "statements": [bind(sql, params)], "shape": [sql], "end": None})
    return txns


def extract(log_path, idle_path, pids_path, out_path):
    modules = dict(line.split() for line in open(pids_path) if line.strip())
    idle = {(t["module"], tuple(t["shape"])) for t in transactions(idle_path, modules)}
    txns = [t for t in transactions(log_path, modules) if (t["module"], tuple(t["shape"])) not in idle]
    for t in txns:
        del t["shape"]
    json.dump(txns, open(out_path, "w"), indent=1)
    writes = sum(1 for t in txns if any(not s.upper().startswith("SELECT") for s in t["statements"]))
    print(f"{len(txns)} transactions ({writes} writing), {sum(len(t['statements']) for t in txns)} statements",
          file=sys.stderr)


def fresh_ids(txns):
    """Every id the booking made or used, in order of first sight: each replay gets its own."""
    seen = {}
    for t in txns:
        for s in t["statements"]:
            for u in UUID.findall(s):
                seen.setdefault(u, len(seen))
    return seen


def pgbench(in_path, prefix, out_path):
    txns = json.load(open(in_path))
    ids = fresh_ids(txns)
    out = []
    if ids:
        out.append("SELECT " + ", ".join(f"gen_random_uuid() AS u{i}" for i in ids.values()) + " \\gset")
        # pgbench reads `::name` as a cast, not a variable: an id after a colon ("user:<id>")
        # becomes a variable that holds the colon too.
        after_colon = sorted({ids[u] for t in txns for s in t["statements"] for u in re.findall(":(" + UUID.pattern + ")", s)})
        if after_colon:
            out.append("SELECT " + ", ".join(f"':' || ':u{i}' AS c{i}" for i in after_colon) + " \\gset")

    def fresh(m):
        return f":c{ids[m.group(2)]}" if m.group(1) else f":u{ids[m.group(2)]}"

    module = None
    for t in txns:
        if t["module"] != module:
            module = t["module"]
            out.append(f'SET search_path TO "{prefix}{module}";')
        body = [re.sub("(:?)(" + UUID.pattern + ")", fresh, s) for s in t["statements"]]
        lines = (["BEGIN;"] + [s + ";" for s in body] + [t["end"] + ";"]) if t["end"] else [s + ";" for s in body]
        # pgbench reads one command per line.
        out += [" ".join(line.split()) for line in lines]
    open(out_path, "w").write("\n".join(out) + "\n")


def to_sqlite(sql):
    """PostgreSQL's spelling of a statement, as SQLite takes it."""
    sql = re.sub(r"\s+FOR (NO KEY )?UPDATE( SKIP LOCKED| NOWAIT)?", "", sql)
    sql = re.sub(r"::[a-z_ ]+(\[\])?", "", sql)
    return sql


def sqlite_worker(args):
    txns, data, seconds, threads, start = args
    done, failed = [0], []
    stop_at = start + seconds

    def client():
        conns = {}
        while time.time() < stop_at:
            fresh = {u: str(uuid.uuid4()) for u in fresh_ids(txns)}
            for t in txns:
                conn = conns.get(t["module"])
                if conn is None:
                    conn = conns[t["module"]] = sqlite3.connect(f"{data}/{t['module']}.db", timeout=10,
                                                                isolation_level=None, check_same_thread=False)
                    conn.execute("PRAGMA synchronous = NORMAL")
                    conn.execute("PRAGMA busy_timeout = 10000")
                try:
                    if t["end"]:
                        conn.execute("BEGIN IMMEDIATE" if any(not s.upper().startswith("SELECT")
                                                              for s in t["statements"]) else "BEGIN")
                    for s in t["statements"]:
                        conn.execute(UUID.sub(lambda m: fresh[m.group(0)], s)).fetchall()
                    if t["end"]:
                        conn.execute(t["end"])
                except sqlite3.Error as e:
                    failed.append(f"{e}: {s[:200]}")
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
            done[0] += 1

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return done[0], failed[:5], len(failed)


def sqlite_replay(in_path, data, seconds, clients):
    txns = json.load(open(in_path))
    for t in txns:
        t["statements"] = [to_sqlite(s) for s in t["statements"]]
    processes = min(2, int(clients))
    start = time.time() + 0.5
    with multiprocessing.Pool(processes) as pool:
        results = pool.map(sqlite_worker, [(txns, data, float(seconds), int(clients) // processes, start)] * processes)
    elapsed = time.time() - start
    done = sum(r[0] for r in results)
    failures = sum(r[2] for r in results)
    commits = sum(1 for t in txns if t["end"] == "COMMIT") + sum(1 for t in txns if not t["end"])
    print(json.dumps({"backend": "sqlite", "clients": int(clients), "bookings": done, "seconds": round(elapsed, 2),
                      "per_second": round(done / elapsed, 1), "transactions_per_booking": len(txns),
                      "commits_per_booking": commits, "failed_statements": failures,
                      "first_failures": [f for r in results for f in r[1]][:5]}))
    if failures or not done:
        sys.exit(1)


if __name__ == "__main__":
    verb, *rest = sys.argv[1:]
    {"extract": extract, "pgbench": pgbench, "sqlite": sqlite_replay}[verb](*rest)
