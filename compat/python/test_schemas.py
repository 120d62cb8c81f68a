"""supabase-py against forge-server's /rest/v1 beyond `public`: the exposed schemas
(FORGE_DB_SCHEMAS, PostgREST's db-schemas) reached with client.schema(...).

Run through compat/run.sh, which exposes public and compat_api.
"""

from __future__ import annotations

from forge_compat import ANON_KEY, client, fails, last_request, last_response, sql_rows

anon = client(ANON_KEY)


def test_schema_reads_with_accept_profile():
    data = anon.schema("compat_api").table("memos").select("id, body").order("id").execute().data
    assert data == sql_rows("select id, body from compat_api.memos order by id")
    assert last_request().headers["accept-profile"] == "compat_api"
    assert last_response().headers["content-profile"] == "compat_api"


def test_schema_writes_with_content_profile_and_calls_functions():
    api = anon.schema("compat_api")
    inserted = api.table("memos").insert({"body": "from supabase-py"}).execute().data
    assert [row["body"] for row in inserted] == ["from supabase-py"]
    assert last_request().headers["content-profile"] == "compat_api"
    assert len(sql_rows("select body from compat_api.memos where body = 'from supabase-py'")) == 1
    api.table("memos").delete().eq("body", "from supabase-py").execute()
    assert anon.schema("compat_api").rpc("shout", {"msg": "hi"}).execute().data == "HI!"


def test_default_schema_is_public_and_unexposed_schemas_are_refused():
    fails(lambda: anon.table("memos").select("*").execute(), 404, "PGRST205")
    err = fails(lambda: anon.schema("compat_hidden").table("secrets").select("*").execute(), 406, "PGRST106")
    assert err.message == "Invalid schema: compat_hidden"
    assert "public, compat_api" in (err.hint or "")
