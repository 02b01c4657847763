"""The documents bucket: presigned POSTs limited to one key, one type and a size, presigned GETs, and the
first bytes of an object for sniffing. Objects live under the account's prefix, encrypted at rest."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.exceptions import ClientError

from chalicelib.domain.files import SNIFF_BYTES, StoredObject

UPLOAD_SECONDS = 900
DOWNLOAD_SECONDS = 300


class ErasureIncomplete(RuntimeError):
    """S3 kept some of the versions it was asked to delete (DeleteObjects answers 200 and lists them)."""


class S3Documents:
    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    @cached_property
    def upload_origin(self) -> str:
        """Where browsers send presigned uploads (`scheme://host`), for the portal page's connect-src:
        asked of the signer itself (no call to AWS), so it is exactly the bucket's host in every region
        and the embedded moto locally."""
        url = self._client.generate_presigned_post(Bucket=self._bucket, Key="accounts/", ExpiresIn=60)["url"]
        parts = urlsplit(str(url))
        return f"{parts.scheme}://{parts.netloc}"

    def presigned_post(
        self, key: str, content_type: str, max_bytes: int, now: datetime
    ) -> tuple[str, dict[str, str], datetime]:
        fields = {"Content-Type": content_type, "x-amz-server-side-encryption": "AES256"}
        post = self._client.generate_presigned_post(
            Bucket=self._bucket,
            Key=key,
            Fields=fields,
            Conditions=[
                {"Content-Type": content_type},
                {"x-amz-server-side-encryption": "AES256"},
                ["content-length-range", 1, max_bytes],
            ],
            ExpiresIn=UPLOAD_SECONDS,
        )
        return (
            str(post["url"]),
            {str(k): str(v) for k, v in post["fields"].items()},
            now + timedelta(seconds=UPLOAD_SECONDS),
        )

    def head(self, key: str) -> StoredObject | None:
        """Size, first bytes and version of an object, or None when it is not there."""
        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=key, Range=f"bytes=0-{SNIFF_BYTES - 1}")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "InvalidRange"):
                return None
            raise
        total = str(answer.get("ContentRange", "")).rpartition("/")[2]
        size = int(total) if total.isdigit() else int(answer.get("ContentLength", 0))
        version = answer.get("VersionId")
        return StoredObject(size, bytes(answer["Body"].read()), str(version) if version else None)

    def erase_prefix(self, prefix: str) -> int:
        """Delete every version (and delete marker) of every object under `prefix`: the bucket is
        versioned, so deleting the current objects alone would keep the files. One page of at most
        1,000 versions a call, each deleted in one DeleteObjects; returns how many versions went."""
        erased = 0
        marker: dict[str, str] = {}
        while True:
            listed = self._client.list_object_versions(
                Bucket=self._bucket, Prefix=prefix, MaxKeys=1000, **marker
            )
            versions = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in (*listed.get("Versions", []), *listed.get("DeleteMarkers", []))
            ]
            if versions:
                answer = self._client.delete_objects(
                    Bucket=self._bucket, Delete={"Objects": versions, "Quiet": True}
                )
                # A refused key is reported in the answer, not raised: the erasure must not go on as
                # if the files were gone (the dossier would be erased and its files kept).
                if answer.get("Errors"):
                    codes = sorted({str(error.get("Code")) for error in answer["Errors"]})
                    raise ErasureIncomplete(f"S3 kept {len(answer['Errors'])} versions: {', '.join(codes)}")
                erased += len(versions)
            if not listed.get("IsTruncated"):
                return erased
            marker = {"KeyMarker": listed["NextKeyMarker"], "VersionIdMarker": listed["NextVersionIdMarker"]}

    def put_letter(self, key: str, pdf: bytes) -> None:
        """Store a prepared letter: private (the bucket blocks public access), encrypted at rest. Keys and
        bytes are deterministic, so storing the same letter twice leaves one object."""
        self._client.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=pdf,
            ContentType="application/pdf",
            ServerSideEncryption="AES256",
        )

    def get_letter(self, key: str) -> bytes:
        return bytes(self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read())

    def letter_url(self, key: str, filename: str) -> str:
        return self.presigned_get(key, filename, None)

    def presigned_get(self, key: str, filename: str, version: str | None) -> str:
        """A short-lived link to the object's `version` (the one checked), saved under `filename`."""
        params = {
            "Bucket": self._bucket,
            "Key": key,
            "ResponseContentDisposition": content_disposition(filename),
        }
        if version:
            params["VersionId"] = version
        return str(
            self._client.generate_presigned_url("get_object", Params=params, ExpiresIn=DOWNLOAD_SECONDS)
        )


def content_disposition(filename: str) -> str:
    """`attachment` with the name as RFC 6266 says: an ASCII fallback, and the exact name in UTF-8."""
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
