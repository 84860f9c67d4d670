"""A TCP proxy that delays peer traffic, run inside one node's namespace.

The kernel here has no netem, so delay comes from user space: nftables in
the node's namespace redirects the node's outgoing connections to each
peer's port to a local port of this proxy (table ip jlproxy, nat output
hook); the proxy connects on to the real peer with socket mark 0x4a4c,
which the redirect rule skips. Every chunk read from either side is held
until it is `delay` old, then written in order, so a connection to peer J
started by node I sees delay[I] + delay[J] milliseconds each way. Delays
come from a file of 'node ms' lines, re-read every 0.2 s, so the harness
changes them while kvd runs. Connections made before the proxy started
are not affected: the proxy must be running before kvd starts.

Failure modes: a side closing or resetting closes the other side; a
failed connect to the peer closes the accepted connection at once (the
node sees the refusal as it would without the proxy).

usage: delayproxy.py CONFIG SELF LISTEN_PORT=PEER_ID=HOST:PORT ...
"""

import asyncio
import socket
import sys
import time

MARK = 0x4A4C


class Delays:
    def __init__(self, path):
        self.path = path
        self.ms = {}
        self.read_at = 0

    def get(self, a, b):
        now = time.monotonic()
        if now - self.read_at > 0.2:
            self.read_at = now
            try:
                with open(self.path) as f:
                    self.ms = {p[0]: float(p[1]) for p in
                               (ln.split() for ln in f) if len(p) == 2}
            except (OSError, ValueError):
                pass
        return (self.ms.get(a, 0.0) + self.ms.get(b, 0.0)) / 1000.0


async def pump(reader, writer, delay):
    queue = asyncio.Queue()

    async def read():
        try:
            while True:
                data = await reader.read(65536)
                await queue.put((time.monotonic(), data))
                if not data:
                    return
        except (OSError, asyncio.CancelledError):
            await queue.put((time.monotonic(), b""))

    async def write():
        try:
            while True:
                t, data = await queue.get()
                wait = t + delay() - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    await asyncio.gather(read(), write())


async def serve(delays, me, port, peer, host, pport):
    async def handle(r1, w1):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, MARK)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(s, (host, pport))
            r2, w2 = await asyncio.open_connection(sock=s)
        except OSError:
            s.close()
            w1.close()
            return
        w1.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP,
                                               socket.TCP_NODELAY, 1)

        def d():
            return delays.get(me, peer)
        await asyncio.gather(pump(r1, w2, d), pump(r2, w1, d),
                             return_exceptions=True)

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


async def main(argv):
    delays = Delays(argv[0])
    me = argv[1]
    tasks = []
    for spec in argv[2:]:
        port, peer, addr = spec.split("=")
        host, pport = addr.rsplit(":", 1)
        tasks.append(serve(delays, me, int(port), peer, host, int(pport)))
    await asyncio.gather(*tasks)


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1:]))
    except KeyboardInterrupt:
        pass
