#!/bin/bash
# Bad input on the client port: garbage, a truncated frame, an oversize
# length, an unknown op, a client that never reads its answers. Each closes
# only that connection, with one log line, and the node keeps serving.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh

it_init badinput 23300 3
# Node 1 queues at most 4 MiB of answers for a client.
start_node 1 --max-client-queue-mb 4
# Node 2 takes at most two clients at once.
start_node 2 --max-clients 2
start_node 3
check "a leader is elected" wait_for 10 have_leader
ADDR=$(client_addr 1)
LOG=$(log_of 1)

# A raw client. Usage: rawclient.py HOST:PORT CASE [LOGFILE]. Exits 0 when
# the server closed the connection (or, for "silent", logged closing it)
# within 5 s; 1 otherwise.
cat >"$IT_TMP/rawclient.py" <<'EOF'
import socket, struct, sys, time

host, port = sys.argv[1].rsplit(":", 1)
case = sys.argv[2]

def frame(payload):
    return struct.pack(">I", len(payload)) + payload

def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def get_request(rid, key, serializable):
    get = b"\x0a" + varint(len(key)) + key + (b"\x10\x01" if serializable else b"")
    return frame(b"\x08" + varint(rid) + b"\x12" + varint(len(get)) + get)

def status_request(rid):
    return frame(b"\x08" + varint(rid) + b"\x2a\x00")

def closed_by_server(s):
    s.settimeout(5)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True

s = socket.create_connection((host, int(port)))
if case == "max-clients":
    # Two connections are served; a third is closed at once.
    s2 = socket.create_connection((host, int(port)))
    for c in (s, s2):
        c.sendall(status_request(1))
        c.settimeout(5)
        if len(c.recv(4)) == 0:
            sys.exit(1)
    s3 = socket.create_connection((host, int(port)))
    sys.exit(0 if closed_by_server(s3) else 1)
if case == "garbage":
    s.sendall(frame(b"\xff\xff\xff\xff\xff\xff"))
elif case == "http":
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
elif case == "oversize":
    s.sendall(struct.pack(">I", 3 * 1024 * 1024) + b"\x08\x01")
elif case == "truncated":
    s.sendall(struct.pack(">I", 100) + b"\x08\x01\x2a\x00" + b"\x00" * 6)
    s.shutdown(socket.SHUT_WR)
elif case == "unknown-op":
    s.sendall(frame(b"\x08\x07"))
elif case == "pipelined":
    # Three requests in one write, answered by id; then a clean close.
    s.sendall(status_request(1) + get_request(2, b"k", True) + status_request(3))
    s.settimeout(5)
    buf = b""
    answers = 0
    while answers < 3:
        data = s.recv(65536)
        if not data:
            sys.exit(1)
        buf += data
        while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
            n = struct.unpack(">I", buf[:4])[0]
            buf = buf[4 + n:]
            answers += 1
    s.close()
    sys.exit(0)
elif case in ("silent", "silent-small"):
    # Ask for a 1 MiB value many times, or for many small answers, and
    # never read them.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    if case == "silent":
        want = b"".join(get_request(i, b"big", True) for i in range(1, 200))
    else:
        want = b"".join(status_request(i) for i in range(1, 200000))
    lines_before = open(sys.argv[3]).read().count("client is not reading")
    sent = 0
    deadline = time.time() + 5
    while sent < len(want) and time.time() < deadline:
        try:
            sent += s.send(want[sent:])
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            break
    while time.time() < deadline:
        with open(sys.argv[3]) as f:
            if f.read().count("client is not reading") > lines_before:
                sys.exit(0)
        time.sleep(0.05)
    sys.exit(1)
else:
    sys.exit(2)
sys.exit(0 if closed_by_server(s) else 1)
EOF

# shellcheck disable=SC2317 # called through check
raw() {
	python3 "$IT_TMP/rawclient.py" "$ADDR" "$@"
}
# shellcheck disable=SC2317 # called through check_out
count() {
	grep -c "msg=\"closing client connection\".*reason=\"$1\"" "$LOG"
}

check_rc "a put of a 1 MiB value through node 1" 0 \
	kvctl put big - < <(head -c 1048576 /dev/zero)
check "pipelined requests on one connection are all answered" raw pipelined

check "garbage in a frame: the connection is closed" raw garbage
check_out "... with one log line" 1 count "request does not decode"
check "an HTTP request: the connection is closed" raw http
check "an oversize length: the connection is closed" raw oversize
check_out "... with one log line each" 2 count "frame too large"
check "a truncated frame: the connection is closed" raw truncated
check_out "... with one log line" 1 count "truncated frame"
check "a request without an op: the connection is closed" raw unknown-op
check_out "... with one log line" 1 count "request with an unknown op"
check "a client that never reads is disconnected" raw silent "$LOG"
check_out "... with one log line" 1 count "client is not reading its answers"
check "a client that never reads many small answers is disconnected" \
	raw silent-small "$LOG"
check_out "... with one log line" 2 count "client is not reading its answers"

check "a client over --max-clients is turned away" \
	python3 "$IT_TMP/rawclient.py" "$(client_addr 2)" max-clients
check "... with a log line naming the limit" grep -q 'msg="refusing client connection".*reason="too many clients" clients=2 limit=2$' "$(log_of 2)"
check "node 2 serves again once those clients left" \
	wait_for 5 kvctl_at 2 --timeout 1s status

check_rc "node 1 still takes writes" 0 kvctl_at 1 --timeout 3s put after bad
check_out "node 1 still serves reads" bad kvctl_at 1 --timeout 3s get after
check "node 1 is still running" kill -0 "$(node_pid 1)"

it_finish
