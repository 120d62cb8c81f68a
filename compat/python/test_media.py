"""supabase-py against forge-server's /rest/v1: the explain() media type (the Python client has
no geojson())."""

from __future__ import annotations

from forge_compat import ANON_KEY, client

anon = client(ANON_KEY)


def test_explain_json_with_analyze() -> None:
    res = anon.table("places").select("id").eq("id", 1).explain(analyze=True, format="json").execute()
    plan = res.data
    plan = plan[0] if isinstance(plan, list) else plan
    assert "Plan" in plan, plan
    assert isinstance(plan["Execution Time"], (int, float))


def test_explain_text() -> None:
    res = anon.table("places").select("id").explain().execute()
    assert isinstance(res, str) or isinstance(getattr(res, "data", None), str) or "places" in str(res)
    assert "places" in str(res)
