from conftest import card_payload


def test_charge_then_replay(client):
    body = card_payload()
    first = client.post("/", json=body)
    second = client.post("/", json=body)
    assert first.status_code == 200
    assert first.json["error_code"] is None
    assert second.json == first.json
    detail = client.get(f"/api/transactions/{body['transaction_id']}").json
    assert [a["number"] for a in detail["attempts"]] == [1, 2]
