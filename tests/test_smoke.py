"""The document's flow end to end through the Flask test client: authorize, token, list, models, execute, outputs."""

from tests.plugins.emulator import LIST_PLANS, MODELS, Api


def test_document_flow(api: Api, auth: dict[str, str]) -> None:
    plans = api.client.get(LIST_PLANS, headers=auth).get_json()
    assert plans["code"] == 200 and plans["message"] == "success"
    assert "acf42dd3" in [p["processPlanId"] for p in plans["data"]]
    models = api.client.post(MODELS, headers=auth, json={"processPlanId": "acf42dd3"}).get_json()
    assert models["data"][0]["mapParam"] == [{"name": "DPA_MODEL_WORKDIR", "type": "running"}]
    instance = api.start(auth, callbackUrl=None)
    api.advance(10)
    assert api.run(instance)["status"] == "SUCCESS"
    outputs = api.out_params(auth, "acf42dd3", instance).get_json()
    assert [p["nodeName"] for p in outputs["data"][0]["mapParam"]] == ["准备工作目录", "调用健康检查"]
