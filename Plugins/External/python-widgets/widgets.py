#!/usr/bin/env python3
"""A Tether out-of-process plugin for example.com/v1 Widget, in plain Python 3 (no packages).

Frames on stdin and stdout: a 4-byte big-endian length, then that many bytes of JSON.
Requests carry an id and an operation; every answer echoes the id with a result or an error.
Logs go to stderr, never stdout (stdout carries only frames).
"""
import json
import struct
import sys

KINDS = [{"apiVersion": "example.com/v1", "kind": "Widget"}]
OPERATIONS = ["validate", "replicas", "setReplicas", "health", "summary", "aggregateStatus"]


def read_frame(stream):
    header = stream.read(4)
    if len(header) < 4:
        return None
    (length,) = struct.unpack(">I", header)
    body = stream.read(length)
    if len(body) < length:
        return None
    return json.loads(body)


def write_frame(stream, value):
    body = json.dumps(value, separators=(",", ":")).encode()
    stream.write(struct.pack(">I", len(body)) + body)
    stream.flush()


def validate(widget):
    size = widget.get("spec", {}).get("size")
    if size is not None and (not isinstance(size, int) or size < 0):
        return [{"field": "spec.size", "message": "must be a non-negative integer"}]
    return []


def health(widget):
    spec, status = widget.get("spec", {}), widget.get("status") or {}
    wanted, ready = spec.get("size", 1), status.get("readyCount", 0)
    if status.get("phase") == "Failed":
        return {"state": "Degraded", "reason": status.get("message", "the widget failed")}
    if ready >= wanted:
        return {"state": "Healthy"}
    return {"state": "Progressing", "reason": "%d of %d ready" % (ready, wanted)}


def handle(request):
    operation, obj = request["operation"], request.get("object", {})
    if operation == "handshake":
        return {"name": "python-widgets", "pluginVersion": "1.0.0", "version": 1, "kinds": KINDS, "operations": OPERATIONS}
    if operation == "validate":
        return validate(obj)
    if operation == "replicas":
        return obj.get("spec", {}).get("size", 1)
    if operation == "setReplicas":
        obj.setdefault("spec", {})["size"] = request["replicas"]
        return obj
    if operation == "health":
        return health(obj)
    if operation == "summary":
        return {"readyCount": (obj.get("status") or {}).get("readyCount", 0)}
    if operation == "aggregateStatus":
        members = request.get("members", [])
        return {
            "readyCount": sum(member["summary"].get("readyCount", 0) for member in members),
            "clusters": len(members),
        }
    raise ValueError("unknown operation " + operation)


def main():
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        request = read_frame(stdin)
        if request is None:
            return
        try:
            write_frame(stdout, {"id": request["id"], "result": handle(request)})
        except Exception as error:  # an answer, never a crash
            write_frame(stdout, {"id": request.get("id", -1), "error": str(error)})


if __name__ == "__main__":
    main()
