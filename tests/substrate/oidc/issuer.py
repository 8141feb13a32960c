#!/usr/bin/env python3
"""Test-only OpenID Connect issuer for the local test clusters.

tests/substrate/clusters starts one per cluster, before its kube-apiserver,
whose JWT authenticator (--authentication-config) trusts it. It serves, over
HTTPS on 127.0.0.1 only (a certificate from the cluster's CA):

  /.well-known/openid-configuration   issuer, jwks_uri
  /jwks                               the RSA public key tokens are signed with

and nothing else: tokens are minted by ./exec-plugin (a kubeconfig exec
credential plugin) with the private key, which lives in the cluster's pki
directory. Standard library only; the key's modulus is read once with
`openssl rsa -modulus`.

  issuer.py --port PORT --cert CRT --key KEY --signing-key RSA_KEY --issuer URL
"""
import argparse
import base64
import http.server
import json
import ssl
import subprocess
import sys


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwks(signing_key):
    out = subprocess.run(["openssl", "rsa", "-in", signing_key, "-noout", "-modulus"],
                         check=True, capture_output=True, text=True).stdout.strip()
    modulus = bytes.fromhex(out.split("=", 1)[1])
    return {"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "lifeboat-test",
                      "n": b64url(modulus), "e": "AQAB"}]}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--signing-key", required=True)
    p.add_argument("--issuer", required=True)
    args = p.parse_args()
    documents = {
        "/.well-known/openid-configuration": {
            "issuer": args.issuer,
            "jwks_uri": args.issuer + "/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        },
        "/jwks": jwks(args.signing_key),
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            doc = documents.get(self.path)
            body = json.dumps(doc or {"error": "not found"}).encode()
            self.send_response(200 if doc else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *a):
            sys.stderr.write("oidc issuer: %s\n" % (fmt % a))

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    sys.stderr.write("oidc issuer %s on 127.0.0.1:%d\n" % (args.issuer, args.port))
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
