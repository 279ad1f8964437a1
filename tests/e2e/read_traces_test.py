"""Another language reads the traces: Python decodes what `gradsim run` wrote, and its numbers
match `gradsim inspect --json` (protobuf's JSON mapping) record for record."""
import json
import os
import subprocess
import sys
import tempfile

gradsim, sims = sys.argv[1], sys.argv[2]
from gradsim_traces import read_traces  # noqa: E402  (PYTHONPATH set by ctest)

with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "t.pb")
    subprocess.run([gradsim, "run", "-q", os.path.join(sims, "default.textproto"), "-o", out], check=True)
    header, traces, truncated = read_traces(out)
    assert header.num_sims == 4 and len(traces) == 4 and not truncated, (header.num_sims, len(traces))
    lines = subprocess.run([gradsim, "inspect", "--json", out], check=True, capture_output=True,
                           text=True).stdout.splitlines()
    for t, line in zip(traces, lines):
        j = json.loads(line)
        assert [l.grad_norm for l in t.layers] == [l["grad_norm"] for l in j["layers"]]
        assert t.spec.label == j["spec"]["label"]
    # Cut the file inside its last record: the complete ones still read, and it says so.
    with open(out, "r+b") as f:
        f.truncate(os.path.getsize(out) - 5)
    header, traces, truncated = read_traces(out)
    assert len(traces) == 3 and truncated
    # Flip one bit inside the second record: the checksum catches it.
    from gradsim_traces import CorruptTraces
    with open(out, "r+b") as f:
        data = bytearray(f.read())
        data[len(data) // 2] ^= 0x10
        f.seek(0)
        f.write(data)
    try:
        read_traces(out)
        raise AssertionError("a flipped bit went unnoticed")
    except CorruptTraces as e:
        assert "checksum mismatch" in str(e), e
print("python reader: ok")
