"""The documents bucket: presigned POSTs limited to one key, one type and a size, presigned GETs, and the
first bytes of an object for sniffing. Objects live under the account's prefix, encrypted at rest."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from chalicelib.domain.files import SNIFF_BYTES

UPLOAD_SECONDS = 900
DOWNLOAD_SECONDS = 300


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

    def head(self, key: str) -> tuple[int, bytes] | None:
        """(size, first bytes) of an object, or None when it is not there."""
        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=key, Range=f"bytes=0-{SNIFF_BYTES - 1}")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "InvalidRange"):
                return None
            raise
        total = str(answer.get("ContentRange", "")).rpartition("/")[2]
        size = int(total) if total.isdigit() else int(answer.get("ContentLength", 0))
        return size, bytes(answer["Body"].read())

    def presigned_get(self, key: str, filename: str) -> str:
        return str(
            self._client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self._bucket,
                    "Key": key,
                    "ResponseContentDisposition": f'attachment; filename="{filename}"',
                },
                ExpiresIn=DOWNLOAD_SECONDS,
            )
        )
