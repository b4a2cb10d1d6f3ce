"""Python's own ssl module as an agent-port client: mutual TLS 1.3 with ALPN tether/1, then
one hello frame, and the type of the first frame the hub answers with.

Usage: agent-port-probe.py PORT CA CERT KEY CLUSTER [--tls1.2] [--no-alpn]
Prints `tls: VERSION`, `alpn: PROTOCOL`, `resumed: BOOL` and `answer: FRAME-TYPE` (or
`error: ...`) lines, and exits 0 when the handshake and the exchange ran to their end.
"""

import json
import socket
import ssl
import struct
import sys


def frame(kind, payload):
    body = json.dumps(payload).encode()
    return struct.pack(">IBB", len(body) + 2, kind, 0) + body


def read_exactly(stream, count):
    data = b""
    while len(data) < count:
        chunk = stream.recv(count - len(data))
        if not chunk:
            raise ConnectionError("the hub closed the connection after %d of %d bytes" % (len(data), count))
        data += chunk
    return data


def main():
    port, ca, cert, key, cluster = sys.argv[1:6]
    flags = set(sys.argv[6:])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if "--tls1.2" in flags:
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    else:
        context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(ca)
    context.load_cert_chain(cert, key)
    if "--no-alpn" not in flags:
        context.set_alpn_protocols(["tether/1"])
    try:
        with socket.create_connection(("127.0.0.1", int(port)), timeout=20) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                print("tls: %s" % tls.version(), flush=True)
                print("alpn: %s" % tls.selected_alpn_protocol(), flush=True)
                print("resumed: %s" % tls.session_reused, flush=True)
                hello = {"protocolVersions": [1], "agentVersion": "python-ssl", "cluster": cluster, "kinds": []}
                tls.sendall(frame(1, hello))
                length, kind, _ = struct.unpack(">IBB", read_exactly(tls, 6))
                read_exactly(tls, length - 2)
                print("answer: %d" % kind, flush=True)
    except (OSError, ssl.SSLError) as error:
        print("error: %s" % error, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
