"""A CustomResourceDefinition conversion webhook over HTTPS, as an operator would run one.

Converts CronTabs between stable.example.com/v1 (spec.schedule) and v1beta1 (spec.cronSpec).
Paths: /convert converts; /refuse answers a Failure result; /short answers no objects;
/garbage answers what is not JSON; /unconverted answers the objects at the version they came in.
Prints "listening PORT" once bound, then serves until killed.

Usage: conversion-webhook.py CERT KEY
"""
import http.server
import json
import ssl
import sys


def convert(obj, desired):
    obj = json.loads(json.dumps(obj))
    spec = obj.get("spec", {})
    if desired.endswith("/v1beta1") and "schedule" in spec:
        spec["cronSpec"] = spec.pop("schedule")
    elif desired.endswith("/v1") and "cronSpec" in spec:
        spec["schedule"] = spec.pop("cronSpec")
    obj["apiVersion"] = desired
    return obj


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        review = json.loads(self.rfile.read(length))
        request = review["request"]
        response = {"uid": request["uid"], "result": {"status": "Success"}}
        if self.path == "/refuse":
            response["result"] = {"status": "Failure", "message": "this webhook refuses every object"}
        elif self.path == "/short":
            response["convertedObjects"] = []
        elif self.path == "/unconverted":
            response["convertedObjects"] = request["objects"]
        elif self.path == "/garbage":
            body = b"<html>not a review</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        else:
            response["convertedObjects"] = [convert(o, request["desiredAPIVersion"]) for o in request["objects"]]
        body = json.dumps({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview", "response": response}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        print("request " + (format % args), flush=True)


def main():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[1], sys.argv[2])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print("listening %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
