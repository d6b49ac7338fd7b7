import os
import signal

from agent.store import Outbox


def test_put_is_idempotent_by_key(tmp_path):
    with Outbox(tmp_path / "s.db") as ob:
        a, created = ob.put("mqtt", "evt-1", {"n": 1})
        b, created2 = ob.put("mqtt", "evt-1", {"n": 2})
        assert created and not created2
        assert a.id == b.id and b.payload == {"n": 1}
        ob.put("mqtt", "evt-2", {"n": 3})
        ob.put("tx", "evt-1", {"n": 4})  # keys are per kind
        assert [i.key for i in ob.pending("mqtt")] == ["evt-1", "evt-2"]
        ob.done(a.id, {"ok": True})
        assert [i.key for i in ob.pending("mqtt")] == ["evt-2"]
        assert ob.get("mqtt", "evt-1").result == {"ok": True}
        assert ob.count("tx") == 1


def _writer(path, n, fd):
    ob = Outbox(path)
    for i in range(n):
        ob.put("mqtt", f"k{i}", {"i": i})
        os.write(fd, f"{i}\n".encode())  # reported only after the commit returned


def test_items_survive_sigkill(tmp_path):
    path = tmp_path / "s.db"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: put items, report each after commit
        os.close(r)
        try:
            _writer(path, 100000, w)
        finally:
            os._exit(0)
    os.close(w)
    seen = b""
    with os.fdopen(r, "rb", buffering=0) as fh:
        while seen.count(b"\n") < 200:
            chunk = fh.read(64)
            assert chunk, "writer died early"
            seen += chunk
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    committed = [int(x) for x in seen.split(b"\n")[:-1]]
    with Outbox(path) as ob:
        keys = {i.key for i in ob.pending("mqtt", limit=10**6)}
    assert all(f"k{i}" in keys for i in committed)
