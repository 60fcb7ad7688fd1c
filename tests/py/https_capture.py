"""An HTTPS capture server for TLS tests of promgate's HTTP receivers (Python stdlib).

Serves TLS with --cert/--key, optionally requires a client certificate signed by --client-ca,
answers 200 to every POST and writes it as OUT/NNNN.json (path, headers, body, client cert
subject). Prints READY once listening.
"""
import argparse
import json
import os
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--client-ca")
    a = p.parse_args()
    lock = threading.Lock()
    count = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            peer = self.connection.getpeercert()
            with lock:
                count[0] += 1
                i = count[0]
            rec = {
                "path": self.path,
                "headers": dict(self.headers.items()),
                "body": body.decode("utf-8", "replace"),
                "client_cert": bool(peer),
            }
            tmp = os.path.join(a.out, f".{i:04d}.json")
            with open(tmp, "w") as f:
                json.dump(rec, f)
            os.rename(tmp, os.path.join(a.out, f"{i:04d}.json"))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    if a.client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(a.client_ca)
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("READY", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
