#!/usr/bin/python3
"""Verifies an attestation token the way Intel's Python connector does.

Follows inteltrustauthorityclient/connector/connector.py `verify_token` (intel/trustauthority-
client-for-python @a0fc869b) step by step, with the same libraries it uses: `cryptography` for
X.509/CRLs (Debian python3-cryptography) and PyJWT for the JWS (python3-jwt). Written for tdxvirt's
conformance tests (tests/ita); no code was copied.

Differences from the connector, all at the edges:
  * HTTP is urllib (stdlib) instead of `requests`, with no retries and a 10 s timeout, and the
    CRL URL check of `validators.url` is reduced to "http:// or https://".
  * The clock. `--now` replaces the wall clock in the CRL `next_update` check. PyJWT has no clock
    parameter, so `now` reaches it as `leeway = wall - now` in whole seconds (when `now` is in
    the past): PyJWT refuses when `exp <= wall - leeway`, which is `exp <= now` (to the second);
    its nbf/iat checks become laxer by the same leeway. The connector passes no leeway (wall clock).
  * `next_update_utc` (cryptography >= 42) is used when present, else `next_update` read as UTC
    (Debian 12 ships cryptography 38, which has only the naive attribute).
  * The connector logs and returns None on refusal (and lets ExtensionNotFound escape); here every
    refusal is printed as "REFUSED verify_token: <reason>" with the connector's log text as the
    reason, the inner log line appended after ": " where the connector logs two (CRL download).

Output, last line: "OK <claims JSON>" (exit 0) or "REFUSED ..." (exit 1).
"""
import argparse
import base64
import json
import sys
import time
import urllib.request
from datetime import timezone

import jwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509 import load_der_x509_certificate

ATS_CERTCHAIN_MAXLENGTH = 10


class Refused(Exception):
    pass


def http_get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        if r.status != 200:
            raise Refused(f"GET {url}: HTTP {r.status}")
        return r.read()


def get_crl(crl_url):
    if crl_url == "":
        raise Refused("CRL URL missing in the certificate")
    if not (crl_url.startswith("http://") or crl_url.startswith("https://")):
        raise Refused("Invalid CRL URL")
    try:
        body = http_get(crl_url)
    except OSError as exc:
        raise Refused(f"Error occurred in get_crl request: {exc}")
    try:
        return x509.load_der_x509_crl(body)
    except ValueError as exc:
        raise Refused(f"Error occurred in get_crl request: {exc}")


def next_update_timestamp(crl):
    if hasattr(crl, "next_update_utc"):
        return crl.next_update_utc.timestamp()
    return crl.next_update.replace(tzinfo=timezone.utc).timestamp()


def verify_crl(crl, leaf_cert, ca_cert, now):
    """Returns the connector's log text of the refusal, or None."""
    if leaf_cert is None or ca_cert is None or crl is None:
        return "Leaf Cert, CA Cert, or CRL is None"
    if not crl.is_signature_valid(ca_cert.public_key()):
        return "Invalid CRL signature"
    if crl.next_update is None or next_update_timestamp(crl) < now:
        return "crl has been expired"
    if crl.get_revoked_certificate_by_serial_number(leaf_cert.serial_number) is not None:
        return "certificate has been revoked"
    return None


def common_names(name):
    return name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)


def verify_token(token, base_url, now):
    unverified_headers = jwt.get_unverified_header(token)
    alg = unverified_headers.get("alg", None)
    if alg not in ["RS256", "PS384"]:
        raise Refused("Invalid Token Signing Algorithm")
    kid = unverified_headers.get("kid", None)
    if kid is None:
        raise Refused("Missing key id in token")

    try:
        jwks_data = json.loads(http_get(base_url.rstrip("/") + "/certs"))
    except (OSError, ValueError) as exc:
        raise Refused(f"Failed to get token signing certificates from Intel Trust Authority: {exc}")
    x5c_certificates = None
    for key in jwks_data.get("keys", []):
        if key.get("kid") == kid:
            x5c_certificates = key.get("x5c", [])
            break
    if x5c_certificates is None:
        raise Refused("Could not find Key matching the key id")
    if len(x5c_certificates) > ATS_CERTCHAIN_MAXLENGTH:
        raise Refused(f"Token Signing Cert chain has more than {ATS_CERTCHAIN_MAXLENGTH} certificates")

    # Root: subject CN == issuer CN and contains "Root CA"; Signing CA: CNs differ and contains
    # "Signing CA"; anything else is the leaf (the last one wins).
    leaf_cert = inter_ca_cert = root_cert = None
    for cert in x5c_certificates:
        cert_data = load_der_x509_certificate(base64.b64decode(cert))
        subject_cn = common_names(cert_data.subject)
        issuer_cn = common_names(cert_data.issuer)
        if subject_cn == issuer_cn and subject_cn[0].value.find("Root CA") != -1:
            root_cert = cert_data
        elif subject_cn != issuer_cn and subject_cn[0].value.find("Signing CA") != -1:
            inter_ca_cert = cert_data
        else:
            leaf_cert = cert_data
    if inter_ca_cert is None or leaf_cert is None:
        # The connector dereferences them (AttributeError); named here.
        raise Refused("no Signing CA or no leaf certificate in x5c")

    # Signing CA against the Root CA's CRL: the first full name of the first distribution point.
    try:
        cdp_list = inter_ca_cert.extensions.get_extension_for_oid(x509.ExtensionOID.CRL_DISTRIBUTION_POINTS)
    except x509.ExtensionNotFound as exc:
        raise Refused(f"ExtensionNotFound (uncaught in the connector): Signing CA: {exc}")
    try:
        root_crl_obj = get_crl(cdp_list.value[0].full_name[0].value)
    except Refused as exc:
        raise Refused(f"Failed to get ROOT CA CRL Object: {exc}")
    reason = verify_crl(root_crl_obj, inter_ca_cert, root_cert, now)
    if reason:
        raise Refused(f"Failed to check Intermediate CA Certificate against Root CA CRL: {reason}")

    try:
        cdp_list = leaf_cert.extensions.get_extension_for_oid(x509.ExtensionOID.CRL_DISTRIBUTION_POINTS)
    except x509.ExtensionNotFound as exc:
        raise Refused(f"ExtensionNotFound (uncaught in the connector): leaf: {exc}")
    try:
        intermediate_ca_crl_obj = get_crl(cdp_list.value[0].full_name[0].value)
    except Refused as exc:
        raise Refused(f"Failed to get INTERMEDIATE CA CRL Object: {exc}")
    reason = verify_crl(intermediate_ca_crl_obj, leaf_cert, inter_ca_cert, now)
    if reason:
        raise Refused(f"Failed to check Leaf Certificate against Intermediate CA CRL: {reason}")

    # CA signatures as RSA PKCS#1 v1.5 with each certificate's hash; no validity dates.
    try:
        root_cert.public_key().verify(inter_ca_cert.signature, inter_ca_cert.tbs_certificate_bytes,
                                      padding.PKCS1v15(), inter_ca_cert.signature_hash_algorithm)
    except InvalidSignature:
        raise Refused("Error in verifying inter ca certificate against root certificate")
    try:
        inter_ca_cert.public_key().verify(leaf_cert.signature, leaf_cert.tbs_certificate_bytes,
                                          padding.PKCS1v15(), leaf_cert.signature_hash_algorithm)
    except InvalidSignature:
        raise Refused("Error in verifying leaf certificate against inter ca certificate")

    # The leaf's key and the header's alg (passed as PyJWT's `algorithms`, as the connector does).
    # PyJWT's own clock is whole seconds (timegm of utcnow), so the leeway is too.
    leeway = max(0, int(time.time()) - int(now))
    try:
        return jwt.decode(token, leaf_cert.public_key(), unverified_headers.get("alg"), leeway=leeway)
    except jwt.ExpiredSignatureError as exc:
        raise Refused(f"Attestation Token has expired: {exc}")
    except jwt.InvalidTokenError as exc:
        raise Refused(f"Invalid Attestation token: {exc}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--now", type=float, default=None, help="Unix seconds; default: the wall clock")
    a = ap.parse_args()
    with open(a.token_file) as f:
        token = f.read().strip()
    now = time.time() if a.now is None else a.now
    try:
        claims = verify_token(token, a.base_url, now)
    except Refused as exc:
        print(f"REFUSED verify_token: {exc}")
        return 1
    except Exception as exc:  # what the connector's caller would see
        print(f"REFUSED verify_token: {type(exc).__name__}: {exc}")
        return 1
    print("OK " + json.dumps(claims))
    return 0


if __name__ == "__main__":
    sys.exit(main())
