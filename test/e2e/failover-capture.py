#!/usr/bin/env python3
"""Capture checks of the e2e failover scenario (run-guest.sh, README.md).

Reads tshark fields on stdin, one AoE frame per line, tab-separated (the
statistics pass of run-guest.sh):
  frame.len aoe.version aoe.response aoe.cmd aoe.flags_error aoe.ata.status
  aoe.tag frame.time_epoch frame.interface_id aoe.major aoe.minor
(interface 0 = br0, 1 = br1; major and minor in hex), the orchestrator's
events file (failover-target.sh: "<event> <epoch>" lines) and how many frames
the capture dropped (dumpcap's count). Prints one line
  E2E-FAILOVER key=value ...
and a "FAIL <reason>" line per failed check; exit status 1 if any failed.

Checks, for e0.2's ATA traffic (node C, reachable on br0 through aoe2 and on
br1 through aoe3):
  - every response left on the link its request came in on (same tag), and
    each one's request is in the capture, unless the capture dropped it;
  - the restart happened under load: the initiator sent e0.2 requests while
    node C was away;
  - while aoe3 was down, br0 carried answers and br1 none;
  - after aoe3 came back (and before the restart), both links carried
    answers again.
Measures, not checked: the longest time the initiator waited for e0.2 with
no answer around node C's restart.
"""

import sys


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: failover-capture.py EVENTS_FILE CAPTURE_DROPS < tshark-fields", file=sys.stderr)
        return 2
    capture_drops = int(sys.argv[2])
    events: dict[str, float] = {}
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                events[parts[0]] = float(parts[1])
    frames = []
    for line in sys.stdin:
        cols = line.rstrip("\n").split("\t")
        if len(cols) < 11 or cols[3] != "0":  # ATA only
            continue
        _, _, rsp, _, _, _, tag, t, iface, major, minor = cols[:11]
        dev = f"e{int(major, 0)}.{int(minor, 0)}"
        frames.append((float(t), int(iface), rsp in ("1", "True"), dev, tag))
    frames.sort(key=lambda fr: fr[0])

    out: dict[str, object] = {}
    fails: list[str] = []

    # ---- each e0.2 response on its request's link
    req_iface: dict[str, int] = {}
    mismatched = unmatched = answered = 0
    for _, iface, rsp, dev, tag in frames:
        if dev != "e0.2":
            continue
        if not rsp:
            req_iface[tag] = iface
        elif tag not in req_iface:
            unmatched += 1
        else:
            answered += 1
            if req_iface[tag] != iface:
                mismatched += 1
    out.update(e02_answers=answered, wrong_link=mismatched, no_request=unmatched)
    out.update(capture_drops=capture_drops)
    if answered == 0:
        fails.append("no e0.2 answers in the capture")
    if mismatched:
        fails.append(f"{mismatched} e0.2 answers left on another link than their request")
    if unmatched > capture_drops:
        fails.append(
            f"{unmatched} e0.2 answers to requests not seen on either link, and the capture dropped only {capture_drops} frames"
        )

    # ---- link loss
    down, up = events.get("link-down"), events.get("link-up")
    if down is None or up is None:
        fails.append("no link-down/link-up events")
    else:
        e02 = [fr for fr in frames if fr[3] == "e0.2" and fr[2]]
        # 0.2 s after "ip link set down": frames already on the wire are past
        during = [fr for fr in e02 if down + 0.2 < fr[0] < up]
        # until the restart that follows, which is not this check's business
        until = events.get("restart-sigterm", float("inf"))
        after = [fr for fr in e02 if up < fr[0] < until]
        d0 = sum(1 for fr in during if fr[1] == 0)
        d1 = sum(1 for fr in during if fr[1] == 1)
        a0 = sum(1 for fr in after if fr[1] == 0)
        a1 = [fr[0] for fr in after if fr[1] == 1]
        out.update(down_s=round(up - down, 1), down_answers_br0=d0, down_answers_br1=d1)
        out.update(up_answers_br0=a0, up_answers_br1=len(a1))
        if a1:
            out["up_first_br1_answer_ms"] = round((a1[0] - up) * 1000)
        if d0 == 0:
            fails.append("no e0.2 answers on br0 while aoe3 was down")
        if d1:
            fails.append(f"{d1} e0.2 answers on br1 while aoe3 was down")
        if a0 == 0 or not a1:
            fails.append(f"after aoe3 came back: {a0} answers on br0, {len(a1)} on br1")

    # ---- restart: the longest wait with a request out and no answer
    term, ready = events.get("restart-sigterm"), events.get("restart-ready")
    if term is None or ready is None:
        fails.append("no restart-sigterm/restart-ready events")
    else:
        asked = sum(1 for fr in frames if fr[3] == "e0.2" and not fr[2] and term < fr[0] < ready)
        out["restart_requests_while_away"] = asked
        out["restart_no_answer_ms"] = round(longest_silence("e0.2", frames, term - 1, ready + 30) * 1000)
        if asked == 0:
            fails.append("no e0.2 requests while node C restarted: it was not under load")

    print("E2E-FAILOVER " + " ".join(f"{k}={v}" for k, v in out.items()))
    for f in fails:
        print(f"FAIL {f}")
    return 1 if fails else 0


def longest_silence(dev: str, frames: list, start: float, end: float) -> float:
    """Longest time in [start, end] from dev's first request after an answer to its next answer."""
    longest = 0.0
    waiting_since = None
    for t, _, rsp, d, _ in frames:
        if d != dev or not start <= t <= end:
            continue
        if not rsp:
            if waiting_since is None:
                waiting_since = t
        else:
            if waiting_since is not None:
                longest = max(longest, t - waiting_since)
            waiting_since = None
    return longest


if __name__ == "__main__":
    sys.exit(main())
