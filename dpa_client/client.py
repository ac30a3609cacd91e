"""`DpaClient`: the OAuth dance, token reuse with one re-login on 403, and the five process-plan calls."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import requests

from dpa_client.errors import DpaError
from dpa_client.models import Execution, ModelOutput, ModelVarReq, Plan, ProcessModel, Scene, Token

log = logging.getLogger("dpa_client")

# Paths exactly as the document writes them: two of them carry a `//` that must reach the server.
PATHS: dict[str, str] = {
    "authorize": "/api/dp/auth/oauth/authorize",
    "getToken": "/api/dp/auth/oauth/token",
    "listPlans": "/api/dpa/process/processPlan/queryPlanByUserId",
    "queryModelByPlanId": "/api/dpa/process/processPlan/queryModelByPlanId",
    "saveTimingParam": "/api/dpa/process/processPlan/saveTimingParam",
    "executePlan": "/api/dpa/process//processPlan/opExecutePlanByApi/{processPlanId}",
    "queryPlanRunOutParam": "/api/dpa/process//processPlan/queryPlanRunOutParam",
}
AUTH_FAILED = 403  # the document's 身份验证失败

VarReqs = Iterable[ModelVarReq | Mapping[str, Any]] | None


def parse_envelope(response: requests.Response) -> dict[str, Any]:
    """The `{code, message, data}` body, or DpaError(None, ...) when the response is not one."""
    try:
        body = response.json()
    except ValueError:
        raise DpaError(
            None,
            f"response body is not JSON ({response.headers.get('Content-Type', 'no content type')})",
            response.status_code,
        ) from None
    if not isinstance(body, dict) or not isinstance(body.get("code"), int) or isinstance(body.get("code"), bool):
        raise DpaError(None, "response is not a {code, message, data} envelope", response.status_code, body)
    if not isinstance(body.get("message"), str):
        raise DpaError(None, "envelope has no string 'message'", response.status_code, body)
    return body


def jwt_claims(token: str) -> dict[str, object] | None:
    """The payload of a JWT, not verified (only the platform can), or None when the token is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, TypeError):
        return None
    return claims if isinstance(claims, dict) else None


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT (not verified: only used to know when to log in again), else None."""
    exp = (jwt_claims(token) or {}).get("exp")
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


class DpaClient:
    """One application (client_id/secret) acting for one user; safe to share between threads of one test run."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        user_id: str | None = None,
        scope: str = "default",
        session: requests.Session | None = None,
        verify: bool | str = True,
        timeout: float = 10,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self.user_id = user_id
        self.scope = scope
        self.session = session or requests.Session()
        self.verify = verify
        self.timeout = timeout
        self._token: str | None = None
        self.logins = 0  # how many times login() ran: lets callers see token reuse

    def __repr__(self) -> str:
        # The secret and the token are deliberately absent.
        return (
            f"DpaClient(base_url={self.base_url!r}, client_id={self.client_id!r}, user_id={self.user_id!r}, "
            f"scope={self.scope!r}, logged_in={self._token is not None})"
        )

    __str__ = __repr__

    # -- transport ----------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        # Plain concatenation: urljoin would collapse the document's `//`.
        return self.base_url + path

    def raw(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> requests.Response:
        """Send one request as given and return the response untouched (no envelope parsing, no retry).

        With `auth`, a bearer token is added unless `headers` already has an Authorization entry.
        """
        headers = dict(kwargs.pop("headers", None) or {})
        if auth and not any(k.lower() == "authorization" for k in headers):
            headers["Authorization"] = f"Bearer {self.token()}"
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("verify", self.verify)
        response = self.session.request(method, self.url(path), headers=headers, **kwargs)
        log.debug("%s %s -> HTTP %s", method, path, response.status_code)
        return response

    def _envelope_data(self, response: requests.Response) -> Any:
        body = parse_envelope(response)
        if body["code"] != 200:
            raise DpaError(body["code"], body["message"], response.status_code, body.get("data"))
        if "data" not in body:
            raise DpaError(None, "success envelope has no 'data'", response.status_code, body)
        return body["data"]

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """A protected call: log in if needed; on code 403 log in once more and retry once."""
        had_token = self._token is not None
        response = self.raw(method, path, **kwargs)
        try:
            return self._envelope_data(response)
        except DpaError as exc:
            if exc.code != AUTH_FAILED or not had_token:
                raise
            log.info("%s %s answered 403 with a reused token; logging in again", method, path)
        self._token = None
        return self._envelope_data(self.raw(method, path, **kwargs))

    # -- interface 1: OAuth ---------------------------------------------------------------------------
    def authorize(self) -> str:
        params = {"client_id": self.client_id, "response_type": "code", "scope": self.scope}
        data = self._envelope_data(self.raw("GET", PATHS["authorize"], auth=False, params=params))
        if not isinstance(data, dict) or not isinstance(data.get("code"), str):
            raise DpaError(None, "authorize: data.code is not a string")
        return data["code"]

    def exchange(self, code: str) -> Token:
        body = {
            "code": code,
            "client_id": self.client_id,
            "client_secret": self._secret,
            "grant_type": "authorization_code",
        }
        if self.user_id is not None:
            body["user_id"] = self.user_id
        return Token.from_json(self._envelope_data(self.raw("POST", PATHS["getToken"], auth=False, json=body)))

    def login(self) -> Token:
        token = self.exchange(self.authorize())
        self._token = token.access_token
        self.logins += 1
        return token

    def token(self) -> str:
        """The current access token, logging in first if there is none."""
        if self._token is None:
            self.login()
        assert self._token is not None
        return self._token

    def use_token(self, access_token: str | None) -> None:
        """Adopt a token obtained elsewhere (None forgets the current one)."""
        self._token = access_token

    @property
    def token_expires_at(self) -> float | None:
        return None if self._token is None else jwt_expiry(self._token)

    # -- interfaces 2-6 ---------------------------------------------------------------------------------
    def list_plans(self) -> list[Plan]:
        data = self._call("GET", PATHS["listPlans"])
        return [Plan.from_json(p, f"data[{i}]") for i, p in enumerate(_as_list(data))]

    def models(self, plan_id: str) -> list[ProcessModel]:
        data = self._call("POST", PATHS["queryModelByPlanId"], json={"processPlanId": plan_id})
        return [ProcessModel.from_json(m, f"data[{i}]") for i, m in enumerate(_as_list(data))]

    def execute(self, plan_id: str, callback_url: str | None = None, model_var_req: VarReqs = None) -> list[Execution]:
        body: dict[str, Any] = {"processPlanId": plan_id}
        if callback_url is not None:
            body["callbackUrl"] = callback_url
        if model_var_req is not None:
            body["modelVarReq"] = _var_reqs(model_var_req)
        path = PATHS["executePlan"].format(processPlanId=requests.utils.quote(plan_id, safe=""))
        data = self._call("POST", path, json=body)
        return [Execution.from_json(e, f"data[{i}]") for i, e in enumerate(_as_list(data))]

    def out_params(self, plan_id: str, instance_id: str) -> list[ModelOutput]:
        data = self._call(
            "GET", PATHS["queryPlanRunOutParam"], params={"processPlanId": plan_id, "planInstanceId": instance_id}
        )
        return [ModelOutput.from_json(m, f"data[{i}]") for i, m in enumerate(_as_list(data))]

    def save_timing_param(
        self,
        plan_id: str,
        callback_url: str,
        dimension: str,
        intervals: int | str,
        execute_strategy: str,
        scene_name: str,
        model_var_req: VarReqs = None,
    ) -> Scene:
        # Form-encoded as the document asks; modelVarReq travels as one JSON-string field.
        form = {
            "processPlanId": plan_id,
            "callbackUrl": callback_url,
            "dimension": dimension,
            "intervals": str(intervals),
            "executeStrategy": execute_strategy,
            "sceneName": scene_name,
        }
        if model_var_req is not None:
            form["modelVarReq"] = json.dumps(_var_reqs(model_var_req), ensure_ascii=False)
        return Scene.from_json(self._call("POST", PATHS["saveTimingParam"], data=form), "data")


def _as_list(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise DpaError(None, f"data: expected a list, got {type(data).__name__}")
    return data


def _var_reqs(items: Iterable[ModelVarReq | Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [item.to_json() if isinstance(item, ModelVarReq) else dict(item) for item in items]
