#!/usr/bin/env python3
"""A stream gives its request body back at the 2xx head (the worker's
drop_request_body, whatever the body's size): the stream still
arrives whole, and an answer without reported usage is billed the same
estimated prompt as the non-stream answer to the same body, which keeps
its body to the end.  Both ways a stream's body reaches curl are covered:
rewritten (the worker adds stream_options.include_usage) and sent as the
client gave it (the client asked for include_usage itself)."""
from harness import Harness, parse_sse, wait_for

NO_USAGE = {"x-mock-no-usage": "1"}
# ~20 KiB of words the prompt estimate counts
PROMPT = " ".join(f"word{i}" for i in range(3000))
MESSAGES = [{"role": "user", "content": PROMPT}]


def event(h, db, rid):
    rows = h.psql(db, "SELECT prompt_tokens, completion_tokens, estimated "
                      f"FROM usage_events WHERE event_id = '{rid}'")
    if not rows:
        return None
    return int(rows[0][0]), int(rows[0][1]), rows[0][2] == "t"


with Harness() as h:
    t = h.tap
    g = h.gateway(models="mock-gpt")

    def billed(resp):
        rid = resp[1].get("x-request-id", "")
        return wait_for(lambda: event(h, g.db, rid), timeout=20)

    st, hd, body = g.chat({"model": "mock-gpt", "messages": MESSAGES},
                          NO_USAGE)
    t.eq(st, 200, "non-stream answer to a 20 KiB prompt")
    base = billed((st, hd, body))
    t.ok(base is not None and base[2] and base[0] > 1000,
         "non-stream without usage: an estimated prompt of the body",
         f"event {base}")

    for what, extra in (("rewritten body", {}),
                        ("body as sent",
                         {"stream_options": {"include_usage": True}})):
        req = dict({"model": "mock-gpt", "stream": True,
                    "messages": MESSAGES}, **extra)
        st, hd, body = g.chat(req, NO_USAGE)
        events, problems = parse_sse(body)
        t.ok(st == 200 and not problems and events[-1:] == ["[DONE]"]
             and sum('"content":"tok' in e for e in events) > 0,
             f"stream ({what}): whole, to [DONE]",
             f"status {st}, problems {problems[:2]}, {len(events)} events")
        ev = billed((st, hd, body))
        t.ok(ev is not None and base is not None and ev[2]
             and ev[0] == base[0] and ev[1] > 0,
             f"stream ({what}) without usage: the same estimated prompt "
             "as the non-stream answer, taken before the body went",
             f"stream {ev}, non-stream {base}")
    t.ok(g.proc.alive(), "serve is still running")
