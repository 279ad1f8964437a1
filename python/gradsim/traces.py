"""Reading a traces file: a TraceHeader, then one SimTrace per simulation, each framed as a
varint length, the message bytes and (format 2) the CRC-32 of the message bytes, 4 bytes
little-endian (zlib.crc32). Format 1 files (no checksums) read too."""
import io
import sys
import zlib

from . import gradsim_pb2

MAX_RECORD_BYTES = 256 << 20  # no record gradsim writes is larger
MAGIC = "gradsim-traces"


class CorruptTraces(ValueError):
    """A record is complete but damaged: checksum mismatch, impossible length, not a message."""


def _varint(f):
    """The next varint of f; None at the end of the file; raises EOFError inside one."""
    value, shift = 0, 0
    while True:
        b = f.read(1)
        if not b:
            if shift == 0:
                return None
            raise EOFError
        value |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return value
        shift += 7
        if shift > 28:
            raise CorruptTraces("corrupt record length")


class Traces:
    """A traces file opened for reading: `header`, and iteration over its SimTrace records,
    one at a time (memory does not grow with the file). After iterating, `truncated` says
    whether the file ended inside a record (a run still going, or killed): the records
    before it are complete."""

    def __init__(self, path):
        self.path = path
        self._f = sys.stdin.buffer if path == "-" else open(path, "rb")
        self.truncated = False
        self._offset = 0
        self._count = 0
        start = self._f.peek(32)[:32] if hasattr(self._f, "peek") else b""
        if start and MAGIC.encode() not in start:
            raise ValueError(f"{path}: not a gradsim traces file (no '{MAGIC}' header)")
        body = self._record(checksum=False)
        self.header = gradsim_pb2.TraceHeader()
        if body is None or not self._parse(self.header, body) or self.header.magic != MAGIC:
            raise ValueError(f"{path}: not a gradsim traces file (its header is missing or damaged)")
        self._checksums = self.header.format_version >= 2
        if self._checksums:
            crc = self._f.read(4)
            if len(crc) < 4:
                raise ValueError(f"{path}: the file ends inside its header")
            if int.from_bytes(crc, "little") != zlib.crc32(body):
                raise CorruptTraces(f"{path}: the header is damaged (checksum mismatch)")

    @staticmethod
    def _parse(msg, body):
        try:
            msg.ParseFromString(body)
            return True
        except Exception:
            return False

    def _record(self, checksum):
        """The next record's message bytes; None at the end or inside a cut record."""
        try:
            size = _varint(self._f)
        except EOFError:
            self.truncated = True
            return None
        if size is None:
            return None
        if size > MAX_RECORD_BYTES:
            raise CorruptTraces(f"{self.path}: record {self._count} claims {size} bytes: the file is damaged")
        body = self._f.read(size)
        if len(body) < size:
            self.truncated = True
            return None
        if checksum:
            crc = self._f.read(4)
            if len(crc) < 4:
                self.truncated = True
                return None
            if int.from_bytes(crc, "little") != zlib.crc32(body):
                raise CorruptTraces(f"{self.path}: record {self._count} is damaged (checksum mismatch)")
        return body

    def __iter__(self):
        while True:
            body = self._record(self._checksums)
            if body is None:
                return
            t = gradsim_pb2.SimTrace()
            if not self._parse(t, body):
                raise CorruptTraces(f"{self.path}: record {self._count} is not a simulation record")
            self._count += 1
            yield t

    def close(self):
        if self._f is not sys.stdin.buffer:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read(path):
    """(header, iterator of SimTrace) of a traces file; see Traces."""
    t = Traces(path)
    return t.header, iter(t)
