"""A client of kvd's client protocol (proto/kv.proto), in plain Python.

Frames are a 4-byte big-endian length and one protobuf message; the few
messages needed are encoded and decoded here by hand (protobuf encoding:
varint keys (field << 3 | wire type), varints and length-delimited bytes).

Outcome rules, which decide how the history records an operation:

- connecting fails, or the request cannot be written: nothing was sent,
  fail;
- the node answers RAFT_ENOTLEADER (-3): the node proposed nothing; the
  client follows leader_addr (or the next endpoint) and tries again under
  the same operation until the deadline;
- RAFT_EUNAVAIL (-16), RAFT_EBUSY (-4), RAFT_EINVAL (-2), RAFT_ETOOBIG
  (-9): the node did nothing, fail;
- the deadline passes after the request was written, the connection drops
  before the answer, RAFT_ETIMEDOUT (-11), RAFT_ELEADERLOST (-14), or any
  other code on a write: the outcome is unknown, info;
- a read that does not succeed is fail when nothing was sent or the node
  refused it, info otherwise (the checkers treat both as no effect).
"""

import socket
import struct
import time

ENOTLEADER = -3
EBUSY = -4
EINVAL = -2
ETOOBIG = -9
ENOTFOUND = -10
EUNAVAIL = -16
NOT_DONE = (EUNAVAIL, EBUSY, EINVAL, ETOOBIG)


def _varint(n):
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_varint(field, n):
    return _varint(field << 3) + _varint(n)


def _field_bytes(field, data):
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _decode(buf):
    """Decode one message into {field: [values]}: ints for varints, bytes
    for length-delimited fields."""
    out = {}
    i = 0
    n = len(buf)
    while i < n:
        key = 0
        shift = 0
        while True:
            b = buf[i]
            i += 1
            key |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        field, wt = key >> 3, key & 7
        if wt == 0:
            v = 0
            shift = 0
            while True:
                b = buf[i]
                i += 1
                v |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
        elif wt == 2:
            ln = 0
            shift = 0
            while True:
                b = buf[i]
                i += 1
                ln |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            v = bytes(buf[i:i + ln])
            i += ln
        elif wt == 1:
            v = buf[i:i + 8]
            i += 8
        elif wt == 5:
            v = buf[i:i + 4]
            i += 4
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(field, []).append(v)
    return out


def _one(d, field, default=0):
    v = d.get(field)
    return v[-1] if v else default


def encode_request(rid, op, key=b"", value=b"", serializable=False):
    body = _field_varint(1, rid)
    if op == "get":
        inner = _field_bytes(1, key)
        if serializable:
            inner += _field_varint(2, 1)
        body += _field_bytes(2, inner)
    elif op == "put":
        body += _field_bytes(3, _field_bytes(1, key) + _field_bytes(2, value))
    elif op == "del":
        body += _field_bytes(4, _field_bytes(1, key))
    elif op == "status":
        body += _field_bytes(5, b"")
    else:
        raise ValueError(op)
    return body


class Response:
    def __init__(self, buf):
        d = _decode(buf)
        self.id = _one(d, 1)
        code = _one(d, 2)
        self.code = code - (1 << 64) if code >= 1 << 63 else code
        if self.code >= 1 << 31:
            self.code -= 1 << 32
        self.error = _one(d, 3, b"").decode(errors="replace")
        self.leader_id = _one(d, 4)
        self.leader_addr = _one(d, 5, b"").decode(errors="replace")
        self.value = _one(d, 6, b"")
        self.found = bool(_one(d, 7))
        st = _one(d, 11, None)
        self.status = None
        if st is not None:
            s = _decode(st)
            self.status = {
                "id": _one(s, 1),
                "role": _one(s, 2, b"").decode(),
                "term": _one(s, 3),
                "leader": _one(s, 4),
                "commit": _one(s, 5),
                "applied": _one(s, 6),
                "last_index": _one(s, 7),
                "leader_addr": _one(s, 9, b"").decode(),
                "failed": bool(_one(s, 10)),
            }


class Result:
    """type: ok, fail or info; value: bytes read (None: not found);
    node: address that answered; err: text."""

    def __init__(self, type_, value=None, addr=None, err=None, resp=None):
        self.type = type_
        self.value = value
        self.addr = addr
        self.err = err
        self.resp = resp


class Conn:
    """One TCP connection, one request at a time."""

    def __init__(self, addr, timeout):
        host, port = addr.rsplit(":", 1)
        self.addr = addr
        self.sock = socket.create_connection((host, int(port)),
                                             timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.next_id = 1

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed by %s" % self.addr)
            buf += chunk
        return bytes(buf)

    def send(self, op, **kw):
        rid = self.next_id
        self.next_id += 1
        body = encode_request(rid, op, **kw)
        self.sock.sendall(struct.pack(">I", len(body)) + body)
        return rid

    def recv_any(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline")
        self.sock.settimeout(left)
        n = struct.unpack(">I", self._recv_exact(4))[0]
        if n > 2 << 20:
            raise ConnectionError("oversized frame from %s" % self.addr)
        return Response(self._recv_exact(n))

    def recv(self, rid, deadline):
        while True:
            resp = self.recv_any(deadline)
            if resp.id == rid:
                return resp


class Client:
    """Sends operations to a preferred node, following "not leader"
    answers. Not thread-safe: one per client thread."""

    def __init__(self, endpoints, timeout=2.0, connect_timeout=0.5):
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.conns = {}

    def close(self):
        for c in self.conns.values():
            c.close()
        self.conns.clear()

    def _conn(self, addr):
        c = self.conns.get(addr)
        if c is None:
            c = Conn(addr, self.connect_timeout)
            self.conns[addr] = c
        return c

    def _drop(self, addr):
        c = self.conns.pop(addr, None)
        if c is not None:
            c.close()

    def request(self, addr, op, write, timeout=None, follow=True, **kw):
        """Run one operation starting at addr. Returns a Result."""
        deadline = time.monotonic() + (timeout or self.timeout)
        tried = set()
        err = "no answer"
        while time.monotonic() < deadline:
            try:
                c = self._conn(addr)
            except OSError as e:
                err = "connect %s: %s" % (addr, e)
                tried.add(addr)
                nxt = self._next(addr, tried)
                if nxt is None or not follow:
                    return Result("fail", addr=addr, err=err)
                addr = nxt
                continue
            try:
                c.sock.settimeout(max(deadline - time.monotonic(), 0.001))
                rid = c.send(op, **kw)
            except OSError as e:
                # Nothing (or a partial frame, which the server drops) was
                # sent: the request was not carried out.
                self._drop(addr)
                return Result("fail", addr=addr, err="send: %s" % e)
            try:
                resp = c.recv(rid, deadline)
            except (OSError, ValueError, IndexError, struct.error) as e:
                self._drop(addr)
                return Result("info", addr=addr, err="recv: %s" % e)
            if resp.code == ENOTLEADER and follow:
                tried.add(addr)
                nxt = resp.leader_addr or self._next(addr, tried)
                err = "not leader"
                if nxt is None or nxt in tried and not resp.leader_addr:
                    return Result("fail", addr=addr, err=err)
                if nxt in tried:
                    time.sleep(0.05)  # a stale leader hint: let it settle
                addr = nxt
                continue
            if resp.code == 0 or resp.code == ENOTFOUND:
                val = resp.value if resp.found else None
                return Result("ok", val, addr, resp=resp)
            err = "code %d: %s" % (resp.code, resp.error)
            if resp.code in NOT_DONE or resp.code == ENOTLEADER or not write:
                return Result("fail", addr=addr, err=err, resp=resp)
            return Result("info", addr=addr, err=err, resp=resp)
        return Result("fail", addr=addr, err=err)

    def _next(self, addr, tried):
        for a in self.endpoints:
            if a not in tried:
                return a
        return None

    def get_many(self, addr, keys, serializable=True, timeout=None):
        """Pipelined gets of keys at addr only (no leader following).
        Keys with no answer by the deadline get an info Result. Returns
        {key: Result}."""
        deadline = time.monotonic() + (timeout or self.timeout)
        out = {}
        try:
            c = self._conn(addr)
        except OSError as e:
            return {k: Result("fail", addr=addr, err="connect: %s" % e)
                    for k in keys}
        ids = {}
        try:
            for k in keys:
                ids[c.send("get", key=k.encode(),
                           serializable=serializable)] = k
            while ids and time.monotonic() < deadline:
                resp = c.recv_any(deadline)
                k = ids.pop(resp.id, None)
                if k is None:
                    continue
                if resp.code == 0 or resp.code == ENOTFOUND:
                    out[k] = Result("ok", resp.value if resp.found else None,
                                    addr, resp=resp)
                else:
                    out[k] = Result("fail", addr=addr, err="code %d: %s" %
                                    (resp.code, resp.error))
        except (OSError, ValueError, IndexError, struct.error) as e:
            self._drop(addr)
            for k in ids.values():
                out[k] = Result("info", addr=addr, err=str(e))
            ids = {}
        if ids:
            self._drop(addr)
            for k in ids.values():
                out[k] = Result("info", addr=addr, err="no answer")
        for k in keys:
            if k not in out:
                out[k] = Result("fail", addr=addr, err="not sent")
        return out

    def get(self, addr, key, serializable=False, timeout=None, follow=True):
        return self.request(addr, "get", False, timeout, follow,
                            key=key.encode(), serializable=serializable)

    def put(self, addr, key, value, timeout=None):
        return self.request(addr, "put", True, timeout, key=key.encode(),
                            value=value.encode())

    def status(self, addr, timeout=0.5):
        r = self.request(addr, "status", False, timeout, follow=False)
        return r.resp.status if r.type == "ok" and r.resp else None
