"""Create the stack's S3 buckets (idempotent): the lake and MLflow's proxied artifact store.

Run once by the ``s3-init`` service of deploy/compose.yaml against the S3 server named by
``AWS_ENDPOINT_URL`` (moto in the stack, any S3-compatible store in production), with the
credentials the image entrypoint read from the secret files. Bucket names come from the argv.
"""

from __future__ import annotations

import sys

import boto3
from botocore.exceptions import ClientError


def main(buckets: list[str]) -> int:
    """Create each bucket unless it exists; one line per bucket, exit 2 on the first failure."""
    if not buckets:
        print("error: name at least one bucket: create_buckets.py lake mlflow", file=sys.stderr)
        return 2
    s3 = boto3.client("s3")
    for name in buckets:
        try:
            s3.head_bucket(Bucket=name)
            print(f"bucket {name}: exists")
        except ClientError:
            try:
                s3.create_bucket(Bucket=name)
            except ClientError as exc:
                print(f"error: bucket {name}: {exc}", file=sys.stderr)
                return 2
            print(f"bucket {name}: created")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
