#!/usr/bin/env python3
"""Hostile-client probes against tdxvirt's daemons, loopback only (scripts/abuse.sh starts them).

Every probe is bounded in connections, bytes and time, and targets 127.0.0.0/8 only. Attackers use
source addresses 127.0.0.2 and up, one range per probe so that one probe's leftovers never meet
another's per-source cap; the "normal client" whose service must go on uses 127.0.0.1.
Usage: abuse.py TARGETS.json [--short]   (prints a table; exit 1 when a probe comes out wrong)
"""
import json
import resource
import socket
import ssl
import subprocess
import sys
import threading
import time

SHORT = "--short" in sys.argv
HOST = "127.0.0.1"


def lift_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kib(pid, field="VmHWM"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def connect(t, source="127.0.0.1", handshake=True, timeout=10.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect((HOST, t["port"]))
    if t.get("tls") and handshake:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    return s


def read_response(s, pending=None):
    """(status, closed_after) of one response; status None when the connection ended first.
    `pending` (a bytearray) carries bytes past this response over to the next call."""
    buf = bytes(pending) if pending else b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                return None, True
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        while len(rest) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        if pending is not None:
            pending[:] = rest[length:]
        return status, b"connection: close" in head.lower()
    except (OSError, ValueError, IndexError):
        return None, True


def get(t, path, source="127.0.0.1", timeout=10.0):
    """Status of one GET on a new connection, and the seconds it took."""
    t0 = time.monotonic()
    try:
        s = connect(t, source, timeout=timeout)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        status, _ = read_response(s)
        s.close()
    except OSError:
        status = None
    return status, time.monotonic() - t0


def open_count(socks):
    """How many of socks the server has neither answered nor closed yet (non-blocking reads;
    TLS 1.3 session tickets are consumed, not counted as an answer)."""
    n = 0
    for s in socks:
        s.settimeout(0)
        try:
            s.recv(1)
        except (BlockingIOError, ssl.SSLWantReadError):
            n += 1
        except OSError:
            pass
        finally:
            s.settimeout(10)
    return n


def wait_closed(socks, deadline):
    """How many of socks the server closed before the deadline (reads and discards)."""
    closed = 0
    for s in socks:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                if not s.recv(65536):
                    closed += 1
                    break
            except socket.timeout:
                break
            except (OSError, ssl.SSLError):
                closed += 1
                break
    return closed


# ---- probes: each returns (ok, detail) ----

def slowloris(t):
    n = 16 if SHORT else 64
    socks = []
    for i in range(n):
        s = connect(t, "127.0.0.2")
        s.sendall(b"GET " + t["probe"].encode() + b" HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    stop = threading.Event()

    def trickle():
        while not stop.is_set():
            for s in socks:
                try:
                    s.send(b"X")
                except OSError:
                    pass
            stop.wait(1.0)

    th = threading.Thread(target=trickle)
    th.start()
    status, secs = get(t, t["probe"])
    during = open_count(socks)  # served while every slow client still held its connection
    closed = wait_closed(socks, time.monotonic() + t["header_timeout"] + 5)
    stop.set()
    th.join()
    for s in socks:
        s.close()
    ok = status == 200 and during == n and closed == n
    return ok, (f"{n} trickling: normal client {status} in {secs*1000:.0f} ms with {during} of them open; "
                f"{closed}/{n} cut by the header deadline")


def bare_tls(t):
    if not t.get("tls"):
        return None, "plain HTTP"
    n = 16 if SHORT else 64
    socks = [connect(t, "127.0.0.5", handshake=False) for _ in range(n)]
    status, secs = get(t, t["probe"])
    during = open_count(socks)
    closed = wait_closed(socks, time.monotonic() + t["header_timeout"] + 5)
    for s in socks:
        s.close()
    ok = status == 200 and during == n and closed == n
    return ok, (f"{n} bare connects: normal client {status} in {secs*1000:.0f} ms with {during} of them open; "
                f"{closed}/{n} closed at the handshake deadline")


def flood_body(t, source, total, make_chunk, head):
    """Sends head, then chunks up to `total` bytes, and reads the answer; (status, sent).
    Plain sockets read while sending (a second thread). An SSL socket must not be read and written
    from two threads at once, so over TLS all is sent first (the server reads and drops what comes
    after its answer), then the answer is read."""
    s = connect(t, source, timeout=20)
    s.sendall(head)
    sent = [0]
    chunk = make_chunk()

    def sender():
        try:
            while sent[0] < total:
                s.sendall(chunk)
                sent[0] += len(chunk)
        except OSError:
            pass

    if t.get("tls"):
        sender()
        status, _ = read_response(s)
        s.close()
        return status, sent[0]
    th = threading.Thread(target=sender)
    th.start()
    status, _ = read_response(s)
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    th.join(timeout=30)
    s.close()
    return status, sent[0]


def chunked(t):
    total = (16 if SHORT else 100) << 20
    before = rss_kib(t["pid"])
    piece = 64 << 10
    head = (f"POST {t['post']} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    status, sent = flood_body(t, "127.0.0.3", total, lambda: b"%x\r\n" % piece + b"x" * piece + b"\r\n", head)
    grew = (rss_kib(t["pid"]) - before) // 1024
    ok = status in (401, 405, 413) and grew < 32
    return ok, (f"unauthenticated chunked POST {t['post']}: {status}; {sent >> 20} of {total >> 20} MiB "
                f"sent by the time it was read; peak RSS {grew:+d} MiB")


def header_flood(t):
    total = (8 if SHORT else 64) << 20
    before = rss_kib(t["pid"])
    head = f"GET {t['probe']} HTTP/1.1\r\nHost: x\r\n".encode()
    status, sent = flood_body(t, "127.0.0.4", total, lambda: b"X-Flood: " + b"a" * 8000 + b"\r\n", head)
    grew = (rss_kib(t["pid"]) - before) // 1024
    ok = status == 431 and grew < 32
    return ok, f"{total >> 20} MiB of headers: {status}; {sent >> 10} KiB sent; peak RSS {grew:+d} MiB"


def crowd(t):
    n = 200 if SHORT else 1000
    results = {}
    lock = threading.Lock()
    socks = []
    for i in range(n):
        try:
            socks.append(connect(t, f"127.0.0.{10 + i % 8}"))
        except OSError as e:
            with lock:
                results["connect error"] = results.get("connect error", 0) + 1
    def one(s):
        try:
            s.sendall(f"GET {t['probe']} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            status, _ = read_response(s)
        except OSError:
            status = None
        key = str(status) if status else "closed"
        with lock:
            results[key] = results.get(key, 0) + 1
        s.close()
    threads = [threading.Thread(target=one, args=(s,)) for s in socks]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    status, secs = get(t, t["probe"])
    wrong = {k: v for k, v in results.items() if k not in ("200", "503", "closed")}
    ok = not wrong and status == 200 and alive(t["pid"]) and results.get("200", 0) > 0
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(results.items()))
    return ok, f"{n} at once from 8 addresses: {summary}; then normal client {status}"


def pipelining(t):
    n = 10
    s = connect(t)
    s.sendall(f"GET {t['probe']} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * n)
    pending = bytearray()
    statuses = [read_response(s, pending)[0] for _ in range(n)]
    s.close()
    ok = statuses == [200] * n
    return ok, f"{n} requests in one write: {statuses.count(200)} answered 200 in order"


def qgs_half_sent(t):
    n = 64
    socks = []
    for _ in range(n):
        try:
            s = connect(t, "127.0.0.6")
            s.sendall(b"\x00\x00")  # half of the 4-byte length prefix, then nothing
            socks.append(s)
        except OSError:
            pass
    t0 = time.monotonic()
    r = subprocess.run([t["bin"], "qgs", "get-quote", "--address", f"tcp:{HOST}:{t['port']}",
                        "--report", t["report"], "--out", t["report"] + ".quote"],
                       capture_output=True, timeout=60)
    secs = time.monotonic() - t0
    closed = wait_closed(socks, time.monotonic() + t["header_timeout"] + 5)
    for s in socks:
        s.close()
    ok = r.returncode == 0 and closed == len(socks)
    err = r.stderr.decode(errors="replace").strip()[:120]
    return ok, (f"{len(socks)} half-sent from one peer: another peer's quote "
                f"{'ok' if r.returncode == 0 else 'FAILED ' + err} in {secs*1000:.0f} ms; "
                f"{closed}/{len(socks)} closed (over the per-peer cap at once, the rest at the request deadline)")


HTTP_PROBES = [("slowloris", slowloris), ("bare TLS", bare_tls), ("chunked over limit", chunked),
               ("header flood", header_flood), ("1000 connections", crowd), ("pipelining", pipelining)]


def main():
    lift_fd_limit()
    targets = json.load(open(sys.argv[1]))
    rows, failed = [], 0
    for t in targets:
        probes = [("half-sent requests", qgs_half_sent)] if t.get("qgs") else HTTP_PROBES
        for name, probe in probes:
            if SHORT and name == "1000 connections":
                name = "200 connections"
            try:
                ok, detail = probe(t)
            except Exception as e:  # a probe that breaks is a failure, with its reason
                ok, detail = False, f"probe error: {e!r}"
            if ok is None:
                rows.append((t["name"], name, "n/a", detail))
                continue
            if not alive(t["pid"]):
                ok, detail = False, detail + "; DAEMON DIED"
            failed += 0 if ok else 1
            rows.append((t["name"], name, "ok" if ok else "FAIL", detail))
    w = [max(len(r[i]) for r in rows + [("daemon", "probe", "result", "")]) for i in range(3)]
    print(f"{'daemon':<{w[0]}}  {'probe':<{w[1]}}  {'result':<{w[2]}}  detail")
    for r in rows:
        print(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]}")
    print(f"abuse: {len(rows) - failed - sum(1 for r in rows if r[2] == 'n/a')} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
