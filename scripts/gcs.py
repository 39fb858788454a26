"""Cloud Storage through its JSON API with google-auth credentials (no gsutil, no client library).

Used for TesseraCT's checkpoint (tree size, read from the log bucket and verified with the log's key)
and for the load generators' result files (written by the Jobs, listed and read by the harness).
Parsing is pure and tested on recorded responses (tests/data/gke/).

`python -m scripts.gcs put FILE gs://BUCKET/OBJECT` uploads a file (the load Jobs use it);
`python -m scripts.gcs get gs://BUCKET/OBJECT` prints an object.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from scripts.errors import BadInput, RunFailed, cli_entry

API = "https://storage.googleapis.com/storage/v1"
UPLOAD_API = "https://storage.googleapis.com/upload/storage/v1"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
CHECKPOINT_OBJECT = "checkpoint"   # static-ct-api: the checkpoint sits at the root of the log's storage
TIMEOUT_S = 30


def authorized_session():
    """google-auth AuthorizedSession from application default credentials (Workload Identity in pods)."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError
    from google.auth.transport.requests import AuthorizedSession
    try:
        credentials, _ = google.auth.default(scopes=[SCOPE])
    except DefaultCredentialsError as exc:
        raise BadInput(f"no Google default credentials ({' '.join(str(exc).split())})") from None
    return AuthorizedSession(credentials)


# ---------------------------------------------------------------------------- URLs (pure)


def object_url(bucket: str, name: str) -> str:
    return f"{API}/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"


def media_url(bucket: str, name: str) -> str:
    return object_url(bucket, name) + "?alt=media"


def list_url(bucket: str, prefix: str, page_token: str | None = None) -> str:
    url = f"{API}/b/{quote(bucket, safe='')}/o?prefix={quote(prefix, safe='')}"
    return url + (f"&pageToken={quote(page_token, safe='')}" if page_token else "")


def upload_url(bucket: str, name: str) -> str:
    return f"{UPLOAD_API}/b/{quote(bucket, safe='')}/o?uploadType=media&name={quote(name, safe='')}"


def parse_gs_url(url: str) -> tuple[str, str]:
    if not url.startswith("gs://") or "/" not in url[5:] or url.endswith("/"):
        raise BadInput(f"{url!r} is not gs://BUCKET/OBJECT")
    bucket, name = url[5:].split("/", 1)
    return bucket, name


# ---------------------------------------------------------------------------- parsing (pure)


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def parse_object(doc: dict[str, Any]) -> dict[str, Any]:
    """A storage#object resource: the API sends int64 fields (size, generation) as strings."""
    try:
        if doc.get("kind") != "storage#object":
            raise KeyError("kind")
        return {"bucket": doc["bucket"], "name": doc["name"], "size": int(doc["size"]),
                "generation": int(doc["generation"]), "updated": _time(doc["updated"]),
                "content_type": doc.get("contentType", ""), "crc32c": doc.get("crc32c"),
                "md5": doc.get("md5Hash")}
    except (KeyError, TypeError, ValueError) as exc:
        raise RunFailed(f"GCS object metadata: unexpected shape ({exc})") from None


def parse_list(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """A storage#objects page: (objects, nextPageToken). An empty prefix has no `items` at all."""
    if doc.get("kind") != "storage#objects":
        raise RunFailed("GCS object list: unexpected shape (kind is not storage#objects)")
    return [parse_object(item) for item in doc.get("items", [])], doc.get("nextPageToken")


# ---------------------------------------------------------------------------- calls


def _check(resp, what: str) -> None:
    if resp.status_code != 200:
        body = " ".join(resp.text.split())[:200]
        raise RunFailed(f"GCS {what}: HTTP {resp.status_code} {body}")


def read_object(session, bucket: str, name: str) -> bytes:
    resp = session.get(media_url(bucket, name), timeout=TIMEOUT_S)
    _check(resp, f"read gs://{bucket}/{name}")
    return resp.content


def object_metadata(session, bucket: str, name: str) -> dict[str, Any]:
    resp = session.get(object_url(bucket, name), timeout=TIMEOUT_S)
    _check(resp, f"metadata of gs://{bucket}/{name}")
    return parse_object(resp.json())


def list_objects(session, bucket: str, prefix: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    token = None
    for _page in range(1000):
        resp = session.get(list_url(bucket, prefix, token), timeout=TIMEOUT_S)
        _check(resp, f"list gs://{bucket}/{prefix}")
        items, token = parse_list(resp.json())
        out.extend(items)
        if not token:
            return sorted(out, key=lambda item: item["name"])
    raise RunFailed(f"GCS list gs://{bucket}/{prefix}: more than 1000 pages")


def upload(session, bucket: str, name: str, data: bytes, content_type: str = "application/json") -> dict[str, Any]:
    resp = session.post(upload_url(bucket, name), data=data, headers={"Content-Type": content_type},
                        timeout=TIMEOUT_S)
    _check(resp, f"upload gs://{bucket}/{name}")
    return parse_object(resp.json())


# ---------------------------------------------------------------------------- CLI


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.gcs", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    put = sub.add_parser("put", help="upload FILE to gs://BUCKET/OBJECT")
    put.add_argument("file", type=Path)
    put.add_argument("url")
    get = sub.add_parser("get", help="print gs://BUCKET/OBJECT")
    get.add_argument("url")
    args = parser.parse_args(argv)
    bucket, name = parse_gs_url(args.url)
    session = authorized_session()
    if args.cmd == "put":
        try:
            data = args.file.read_bytes()
        except OSError as exc:
            raise RunFailed(f"{args.file}: {exc.strerror or exc}") from None
        meta = upload(session, bucket, name, data)
        print(f"gs://{meta['bucket']}/{meta['name']} {meta['size']} bytes, generation {meta['generation']}")
    else:
        sys.stdout.buffer.write(read_object(session, bucket, name))
    return 0


if __name__ == "__main__":
    main()
