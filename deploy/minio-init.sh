#!/bin/sh
# One-shot MinIO setup for docker-compose.yml (service `minio-init`, image minio/mc):
# the bucket, a policy that reaches only that bucket, and the app's own user holding
# that policy. The API and workers get S3_ACCESS_KEY/S3_SECRET_KEY, never MinIO's root
# keys, so a leaked worker environment cannot read other buckets or administer MinIO.
# Safe to run on every `docker compose up`: each step leaves an existing setup as is
# (or updates it, for the policy and the app user's secret).
set -eu

: "${MINIO_URL:?}" "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}"
: "${S3_BUCKET:?}" "${S3_ACCESS_KEY:?}" "${S3_SECRET_KEY:?}"
policy_name=backup-api-app

if [ "$S3_ACCESS_KEY" = "$MINIO_ROOT_USER" ]; then
    echo "minio-init: S3_ACCESS_KEY must differ from MINIO_ROOT_USER: the app gets its own user" >&2
    exit 1
fi

# MinIO may still be starting: retry quietly, then once more showing mc's error.
tries=0
until mc alias set local "$MINIO_URL" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then
        mc alias set local "$MINIO_URL" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" || true
        echo "minio-init: MinIO at $MINIO_URL did not accept the root credentials" >&2
        exit 1
    fi
    sleep 1
done

mc mb --ignore-existing "local/$S3_BUCKET"

# What shared/storage/s3.py does, nothing more: list (and find multipart uploads left by
# a killed worker, to abort them), read, write (multipart included), delete.
policy_file="${TMPDIR:-/tmp}/$policy_name.json"
printf '%s' '{"Version":"2012-10-17","Statement":[' \
    '{"Effect":"Allow","Action":["s3:ListBucket","s3:ListBucketMultipartUploads"],' \
    '"Resource":["arn:aws:s3:::'"$S3_BUCKET"'"]},' \
    '{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject","s3:DeleteObject",' \
    '"s3:AbortMultipartUpload"],"Resource":["arn:aws:s3:::'"$S3_BUCKET"'/*"]}]}' \
    >"$policy_file"
mc admin policy create local "$policy_name" "$policy_file"
rm -f "$policy_file"

mc admin user add local "$S3_ACCESS_KEY" "$S3_SECRET_KEY"
# Some MinIO releases refuse to attach a policy the user already holds ("already in
# effect"): attach only when missing. (A shell `case`: the minio/mc image, on ubi-micro,
# has no grep or sed.)
user_info=$(mc admin user info local "$S3_ACCESS_KEY")
case "$user_info" in
    *"PolicyName: "*"$policy_name"*) echo "minio-init: $S3_ACCESS_KEY already holds $policy_name" ;;
    *) mc admin policy attach local "$policy_name" --user "$S3_ACCESS_KEY" ;;
esac
