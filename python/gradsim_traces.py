"""Read a gradsim traces file from Python.

A traces file is a length-delimited gradsim.v1.TraceHeader followed by one length-delimited
gradsim.v1.SimTrace per simulation. The message classes come from proto/gradsim.proto
(the build generates build/proto/gradsim_pb2.py; add that directory to sys.path or PYTHONPATH).

    from gradsim_traces import read_traces
    header, traces, truncated = read_traces("traces.pb")
    for t in traces:
        print(t.index, t.spec.label, [l.grad_norm for l in t.layers])
"""
import sys

from google.protobuf.internal.decoder import _DecodeVarint32

import gradsim_pb2


def _records(data):
    """Yields (body bytes) of each complete record; the last item says whether data ended early."""
    pos = 0
    while pos < len(data):
        try:
            size, start = _DecodeVarint32(data, pos)
        except IndexError:  # the length prefix itself is cut
            yield None
            return
        if start + size > len(data):
            yield None
            return
        yield data[start:start + size]
        pos = start + size


def read_traces(path):
    """Returns (TraceHeader, [SimTrace], truncated)."""
    with open(path, "rb") as f:
        data = f.read()
    records = _records(data)
    first = next(records, None)
    header = gradsim_pb2.TraceHeader()
    if first is None or not header.ParseFromString(first) or header.magic != "gradsim-traces":
        raise ValueError(f"{path}: not a gradsim traces file")
    traces, truncated = [], False
    for body in records:
        if body is None:
            truncated = True
            break
        t = gradsim_pb2.SimTrace()
        t.ParseFromString(body)
        traces.append(t)
    return header, traces, truncated


if __name__ == "__main__":
    header, traces, truncated = read_traces(sys.argv[1])
    print(f"{len(traces)} of {header.num_sims} simulations{' (truncated)' if truncated else ''}")
    for t in traces:
        norms = [l.grad_norm for l in t.layers]
        print(t.index, t.spec.label, "first", norms[0] if norms else None, "last", norms[-1] if norms else None)
