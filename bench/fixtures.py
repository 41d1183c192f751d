#!/usr/bin/env python3
"""Fast generator of token-endpoint fixtures: `assertion<TAB>dpop_proof` lines.

`patron agent bench-fixtures` writes the same lines but takes about 1.4 ms per line (it
rebuilds the signing key for every signature), too slow to fill a 10 s run at several
thousand requests per second before the first lines expire. This script copies the format
from one line the CLI wrote (`--sample`): the JOSE headers and claims of both JWTs are
kept as they are, except `iat` (now), `exp` (now plus the sample's exp - iat) and `jti`
(16 fresh random bytes, base64url). It signs with the agent's keys from the agent file
(ES256, raw r||s). Each line is single use, like the CLI's.

Usage: fixtures.py --agent agent.json --sample one-line.tsv --count N --out FILE [--jobs J]
Needs the `cryptography` package.
"""

import argparse
import base64
import json
import multiprocessing
import os
import sys
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_json(value) -> str:
    return b64u(json.dumps(value, separators=(",", ":")).encode())


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decode_jwt(token: str):
    h, c, _ = token.split(".")
    return json.loads(unb64u(h)), json.loads(unb64u(c))


def private_key(jwk: dict) -> ec.EllipticCurvePrivateKey:
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        sys.exit("fixtures.py: the agent keys must be EC P-256")
    return ec.derive_private_key(int.from_bytes(unb64u(jwk["d"]), "big"), ec.SECP256R1())


def public_xy(key: ec.EllipticCurvePrivateKey):
    n = key.public_key().public_numbers()
    return b64u(n.x.to_bytes(32, "big")), b64u(n.y.to_bytes(32, "big"))


class Signer:
    def __init__(self, key, header):
        self.key = key
        self.header = b64u_json(header)

    def sign(self, claims: dict) -> str:
        signing_input = self.header + "." + b64u_json(claims)
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return signing_input + "." + b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def prepare(agent_file: str, sample_file: str):
    with open(agent_file) as f:
        agent = json.load(f)
    with open(sample_file) as f:
        line = f.readline().rstrip("\n")
    assertion, proof = line.split("\t")
    a_header, a_claims = decode_jwt(assertion)
    p_header, p_claims = decode_jwt(proof)
    if a_header.get("alg") != "ES256" or p_header.get("alg") != "ES256":
        sys.exit("fixtures.py: the sample is not ES256")
    auth = private_key(agent["auth_key"])
    dpop = private_key(agent["dpop_key"])
    x, y = public_xy(dpop)
    jwk = p_header.get("jwk", {})
    if (jwk.get("x"), jwk.get("y")) != (x, y):
        sys.exit("fixtures.py: the sample's DPoP key is not the agent file's dpop_key")
    if a_claims.get("iss") != agent["client_id"]:
        sys.exit("fixtures.py: the sample's assertion is not from the agent file's client")
    return auth, dpop, a_header, a_claims, p_header, p_claims


def work(args):
    agent_file, sample_file, count, out = args
    auth, dpop, a_header, a_claims, p_header, p_claims = prepare(agent_file, sample_file)
    lifetime = int(a_claims["exp"]) - int(a_claims["iat"])
    a_signer = Signer(auth, a_header)
    p_signer = Signer(dpop, p_header)
    now = int(time.time())
    a_claims = dict(a_claims, iat=now, exp=now + lifetime)
    p_claims = dict(p_claims, iat=now)
    with open(out, "w") as f:
        for _ in range(count):
            a_claims["jti"] = b64u(os.urandom(16))
            p_claims["jti"] = b64u(os.urandom(16))
            f.write(a_signer.sign(a_claims) + "\t" + p_signer.sign(p_claims) + "\n")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agent", required=True)
    ap.add_argument("--sample", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    prepare(a.agent, a.sample)  # fail early, in this process, on a bad sample or key
    jobs = max(1, min(a.jobs, a.count))
    shares = [a.count // jobs + (1 if i < a.count % jobs else 0) for i in range(jobs)]
    parts = [(a.agent, a.sample, n, f"{a.out}.part{i}") for i, n in enumerate(shares)]
    if jobs == 1:
        work(parts[0])
    else:
        with multiprocessing.Pool(jobs) as pool:
            pool.map(work, parts)
    with open(a.out, "w") as out:
        for p in parts:
            with open(p[3]) as f:
                out.write(f.read())
            os.remove(p[3])


if __name__ == "__main__":
    main()
