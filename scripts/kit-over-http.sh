#!/usr/bin/env bash
# Run the contract kit (`dpa-mock verify`) over real HTTP against `dpa-mock serve --clock virtual` on a free loopback port:
# the whole kit, a fresh random seed each time (printed); `scripts/kit-over-http.sh --seed N` repeats one.
set -euo pipefail
cd "$(dirname "$0")/.."
port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p reports
dpa-mock serve --clock virtual --port "$port" --quiet >reports/kit-http-server.log 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/__admin/clock" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat reports/kit-http-server.log; exit 1; }
  sleep 0.1
done
# The installed command, as QA runs it (exit 0: no violation); extra arguments go to it (`-- -k oauth` to pytest).
export DPA_CLIENT_SECRET='EZOXzdyqbGt1CpxtHrt5te35zS9iE6jfcgyvpPpNmPU='
dpa-mock verify --base-url "http://127.0.0.1:$port" --client-id 'JhYhK/XcFKuVlpVijwLCkw==' \
  --allow-writes --plan-id acf42dd3 --plan-id d4a8e6f1 --plan-id c3d9f4e5 --allow-scenes \
  --callback-listen 127.0.0.1:0 --callback-public-url auto \
  --junitxml reports/contract-http-junit.xml --report reports/contract-http-report.md \
  --report-json reports/contract-http-report.json "$@" | tee reports/kit-http-verify.txt
# What the unit suite's healthy kit run used to check too: the report names the seed that reproduces the run,
# and neither the secret nor a token (a JWT starts "eyJ") is in anything the kit wrote or printed.
seed=$(sed -n 's/.*(seed \([0-9][0-9]*\)).*/\1/p' reports/kit-http-verify.txt | tail -n 1)
[ -n "$seed" ] && grep -q "seed.*$seed" reports/contract-http-report.md || { echo "kit-http: the report does not name seed '$seed'" >&2; exit 1; }
written=(reports/contract-http-report.md reports/contract-http-report.json reports/contract-http-junit.xml reports/kit-http-verify.txt)
if grep -lF -e "$DPA_CLIENT_SECRET" -e 'eyJ' "${written[@]}"; then
  echo "kit-http: the client secret or a token is in the files above" >&2
  exit 1
fi
