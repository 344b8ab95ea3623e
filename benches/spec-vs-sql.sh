#!/usr/bin/env bash
# Where the query-spec path spends its time next to the same SQL (issue 14): starts
# the release server on a temporary directory, loads EVENTS (default 1M) with
# quarry-load, seals, and prints warm medians of 5 runs of spec questions and of SQL
# variants (plain groups, groups + exemplars, groups x 1-minute buckets), then the
# server's own phase timings of every spec run (RUST_LOG=quarry_query::spec=debug).
# Needs `cargo build --release -p quarry --bin quarry -p quarry-datagen --bin quarry-load`.
# Loopback only; PORT (default 18080) must be free.
set -u
T=${CARGO_TARGET_DIR:-$HOME/.cache/quarry/target}/release
D=$(mktemp -d)
PORT=${PORT:-18080}
RUST_LOG=info,quarry_query::spec=debug $T/quarry serve --data-dir $D --http 127.0.0.1:$PORT --otlp-grpc 127.0.0.1:0 --otlp-http 127.0.0.1:0 --pg 127.0.0.1:0 > $D/log 2>&1 &
PID=$!
for i in $(seq 100); do curl -sf http://127.0.0.1:$PORT/readyz >/dev/null && break; sleep 0.2; done
$T/quarry-load --url http://127.0.0.1:$PORT --events ${EVENTS:-1M} > $D/load.log 2>&1
curl -s -X POST http://127.0.0.1:$PORT/api/v1/admin/seal > /dev/null
uptime
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]*1000 " ms"}'; }
time_post() { # path body
  curl -s -o /dev/null -X POST "http://127.0.0.1:$PORT$1" -H 'Content-Type: application/json' -d "$2"
  for i in 1 2 3 4 5; do curl -s -o /dev/null -w '%{time_total}\n' -X POST "http://127.0.0.1:$PORT$1" -H 'Content-Type: application/json' -d "$2"; done | median
}
sql() { time_post /api/v1/sql "$(python3 -c 'import json,sys; print(json.dumps({"sql": sys.argv[1]}))' "$1")"; }
W="\"timestamp\" >= now() - interval '6 hours'"
for DS in frontend __all__; do
  echo "== $DS"
  echo -n "spec COUNT by service.name: "; time_post /api/v1/query/$DS '{"time_range":21600,"calculations":[{"op":"COUNT"}],"breakdowns":["service.name"]}'
  echo -n "sql groups: "; sql "SELECT \"service.name\", sum(\"meta.sample_rate\") FROM \"$DS\" WHERE $W GROUP BY 1"
  echo -n "sql groups+exemplars: "; sql "SELECT \"service.name\", sum(\"meta.sample_rate\"), quarry_exemplars(CAST(NULL AS DOUBLE), \"timestamp\", CAST(\"trace.trace_id\" AS VARCHAR), CAST(\"trace.span_id\" AS VARCHAR), 'x') FROM \"$DS\" WHERE $W GROUP BY 1"
  echo -n "sql groups x minute: "; sql "SELECT \"service.name\", date_bin(interval '1 minute', \"timestamp\", TIMESTAMP '1970-01-01') AS t, sum(\"meta.sample_rate\") FROM \"$DS\" WHERE $W GROUP BY 1, 2"
  echo -n "spec top10 customer_id: "; time_post /api/v1/query/$DS '{"time_range":21600,"calculations":[{"op":"COUNT"}],"breakdowns":["customer_id"],"orders":[{"op":"COUNT","order":"descending"}],"limit":10}'
  echo -n "sql top10 customer_id: "; sql "SELECT customer_id, sum(\"meta.sample_rate\") c FROM \"$DS\" WHERE $W GROUP BY 1 ORDER BY c DESC LIMIT 10"
  echo -n "sql top10 customer_id + exemplars: "; sql "SELECT customer_id, sum(\"meta.sample_rate\") c, quarry_exemplars(CAST(NULL AS DOUBLE), \"timestamp\", CAST(\"trace.trace_id\" AS VARCHAR), CAST(\"trace.span_id\" AS VARCHAR), 'x') FROM \"$DS\" WHERE $W GROUP BY 1 ORDER BY c DESC LIMIT 10"
done
kill $PID; wait $PID 2>/dev/null
# Where each spec's time went inside the server (plan, pass + merges, heatmap
# cells, exemplar id lookup), one line per spec run, in the order asked.
echo "== spec phases (ms)"
sed 's/\x1b\[[0-9;]*m//g' $D/log | grep "spec answered" | sed 's/.*dataset=/dataset=/'
rm -rf $D
