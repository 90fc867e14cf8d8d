"""The catalog over HTTP: create, read, page, replace, delete; 404 naming the id, 400 naming the field."""

from __future__ import annotations

import pytest

from tests.conftest import WRITE_KEY, TestClient

pytestmark = pytest.mark.backends  # the contract suite: SQLite and PostgreSQL


@pytest.fixture(autouse=True)
def no_write_key(client: TestClient) -> None:
    client.auth = None  # the fixture's client sends the write key; these requests carry the secret key instead


def test_crud_over_http(client: TestClient, reader_headers: dict[str, str]) -> None:
    h = reader_headers
    put = client.put("/v1/catalog/items/sku-1", headers=h,
                     json={"name": "Trail Pack", "category": "Outdoor > Hiking", "price": 89.99, "tags": "a|b"})
    assert put.status_code == 200, put.text
    assert put.json() | {"updated_at": 0} == {
        "id": "sku-1", "name": "Trail Pack", "category": "Outdoor > Hiking", "category_levels": ["Outdoor", "Hiking"],
        "brand": None, "price": 89.99, "currency": None, "tags": ["a", "b"], "text": None, "in_stock": True,
        "attributes": {}, "source": "api", "updated_at": 0}

    many = client.post("/v1/catalog/items", headers=h, json=[{"id": f"sku-{n}", "name": f"Item {n}"} for n in range(5)])
    assert many.json() == {"created": 4, "updated": 1}
    first = client.get("/v1/catalog/items?limit=3", headers=h).json()
    assert [i["id"] for i in first["data"]] == ["sku-0", "sku-1", "sku-2"] and first["next"] == "sku-2"
    rest = client.get(f"/v1/catalog/items?limit=3&cursor={first['next']}", headers=h).json()
    assert [i["id"] for i in rest["data"]] == ["sku-3", "sku-4"] and rest["next"] is None
    assert client.get("/v1/catalog/items/sku-1", headers=h).json()["name"] == "Item 1"

    assert client.delete("/v1/catalog/items/sku-1", headers=h).status_code == 204
    missing = client.get("/v1/catalog/items/sku-1", headers=h)
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "code": "not_found", "message": "no catalog item 'sku-1'",
                              "field": "id"}
    assert client.delete("/v1/catalog/items/sku-1", headers=h).status_code == 404


def test_bad_input_is_a_400_naming_the_field_and_nothing_is_stored(client: TestClient,
                                                                    reader_headers: dict[str, str]) -> None:
    h = reader_headers
    bad = client.put("/v1/catalog/items/x", headers=h, json={"price": "abc"})
    assert bad.status_code == 400 and bad.json()["field"] == "price"
    assert "'abc' is not a number" in bad.json()["message"]
    other = client.put("/v1/catalog/items/x", headers=h, json={"id": "y"})
    assert other.status_code == 400 and other.json()["field"] == "id"

    batch = [{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "d", "price": "abc"}]
    refused = client.post("/v1/catalog/items", headers=h, json=batch)
    assert refused.status_code == 400 and refused.json()["field"] == "items[3].price"
    assert client.post("/v1/catalog/items", headers=h, json={"id": "a"}).json()["field"] == "items"
    assert client.get("/v1/catalog/items", headers=h).json() == {"data": [], "next": None}


def test_the_catalog_needs_a_secret_key(client: TestClient) -> None:
    assert client.get("/v1/catalog/items").status_code == 401
    assert client.put("/v1/catalog/items/x", json={},
                      headers={"Authorization": f"Bearer {WRITE_KEY}"}).status_code == 403
