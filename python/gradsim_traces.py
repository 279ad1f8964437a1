"""Read a gradsim traces file from Python.

A traces file is a gradsim.v1.TraceHeader followed by one gradsim.v1.SimTrace per simulation,
each framed as: varint length, the message bytes, and (format 2) the CRC-32 of the message
bytes, 4 bytes little-endian (zlib.crc32). The message classes come from proto/gradsim.proto
(the build generates build/proto/gradsim_pb2.py; add that directory to sys.path or PYTHONPATH).

    from gradsim_traces import read_traces
    header, traces, truncated = read_traces("traces.pb")
    for t in traces:
        print(t.index, t.spec.label, [l.grad_norm for l in t.layers])
"""
import sys
import zlib

from google.protobuf.internal.decoder import _DecodeVarint32

import gradsim_pb2

MAX_RECORD_BYTES = 256 << 20  # no record gradsim writes is larger


class CorruptTraces(ValueError):
    """A record is complete but damaged (checksum mismatch, impossible length, not a message)."""


def _records(data, path, checksums_from_header=True):
    """Yields the body bytes of each complete record; None when the data ends inside one.
    The header decides whether records carry checksums (format >= 2)."""
    pos, checksums, index = 0, None, 0
    while pos < len(data):
        try:
            size, start = _DecodeVarint32(data, pos)
        except IndexError:  # the length prefix itself is cut
            yield None
            return
        if size > MAX_RECORD_BYTES:
            raise CorruptTraces(f"{path}: record {index} at byte {pos} claims {size} bytes: the file is damaged")
        if checksums is None:  # the header: parse it to learn the format
            body = data[start:start + size]
            if start + size > len(data):
                yield None
                return
            header = gradsim_pb2.TraceHeader()
            header.ParseFromString(body)
            checksums = header.format_version >= 2
        tail = 4 if checksums else 0
        end = start + size + tail
        if end > len(data):
            yield None
            return
        body = data[start:start + size]
        if checksums and zlib.crc32(body) != int.from_bytes(data[start + size:end], "little"):
            raise CorruptTraces(f"{path}: record {index - 1 if index else 'header'} at byte {pos} is damaged "
                                "(checksum mismatch)")
        yield body
        pos, index = end, index + 1


def read_traces(path):
    """Returns (TraceHeader, [SimTrace], truncated). Raises CorruptTraces on a damaged record."""
    with open(path, "rb") as f:
        data = f.read()
    records = _records(data, path)
    try:
        first = next(records, None)
    except Exception as e:  # a foreign file may not even decode
        raise ValueError(f"{path}: not a gradsim traces file ({e})")
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
