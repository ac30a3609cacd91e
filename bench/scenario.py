"""What the benchmark asks of the emulator: the fixture app, the plan it runs, and the document's paths."""

from __future__ import annotations

from urllib.parse import quote

CLIENT_ID = "JhYhK/XcFKuVlpVijwLCkw=="  # poc_client, fixtures/apps.yaml
CLIENT_SECRET = "EZOXzdyqbGt1CpxtHrt5te35zS9iE6jfcgyvpPpNmPU="
PLAN = "acf42dd3"
AUTHORIZE = f"/api/dp/auth/oauth/authorize?client_id={quote(CLIENT_ID, safe='')}&response_type=code&scope=all"
TOKEN = "/api/dp/auth/oauth/token"
LIST = "/api/dpa/process/processPlan/queryPlanByUserId"
EXECUTE = f"/api/dpa/process//processPlan/opExecutePlanByApi/{PLAN}"
OUT_PARAMS = "/api/dpa/process//processPlan/queryPlanRunOutParam"
SCENE = "/api/dpa/process/processPlan/saveTimingParam"
TOKEN_BODY = (
    '{"code":"%s","client_id":"'
    + CLIENT_ID
    + '","client_secret":"'
    + CLIENT_SECRET
    + '","grant_type":"authorization_code"}'
)
