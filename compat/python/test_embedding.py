"""supabase-py against forge-server's /rest/v1: which relationship an embed names, by
PostgREST's rules (self references, hints, keys shared with views).

Run through compat/run.sh, which applies compat/schema.sql.
"""

from __future__ import annotations

import time

import pytest
from postgrest import APIError

from forge_compat import ANON_KEY, client, fails, sql_rows

anon = client(ANON_KEY)


@pytest.fixture(scope="module", autouse=True)
def _tables_loaded():
    # schema.sql's sections land after the server's first schema load: wait for this one.
    deadline = time.monotonic() + 15
    while True:
        try:
            anon.table("folders").select("id").limit(1).execute()
            return
        except APIError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_self_reference_table_name_embeds_children_and_key_column_the_parent():
    children = anon.table("folders").select("name, folders(name)").eq("id", 1).order("name", foreign_table="folders").execute().data
    expected = sql_rows("select name from folders where parent_id = 1 order by name")
    assert children == [{"name": "root", "folders": expected}]
    parent = anon.table("folders").select("name, parent_id(name)").eq("id", 4).execute().data
    assert parent == [{"name": "drafts", "parent_id": {"name": "docs"}}]


def test_column_hint_on_a_self_reference_picks_the_children():
    data = anon.table("folders").select("name, children:folders!parent_id(name)").eq("id", 2).execute().data
    assert data == [{"name": "docs", "children": [{"name": "drafts"}]}]


def test_constraint_hint_on_a_self_reference_is_pgrst200():
    fails(lambda: anon.table("folders").select("name, folders!folders_parent_id_fkey(name)").execute(), 400, "PGRST200")


def test_key_column_embeds_the_table_despite_views_over_it():
    data = anon.table("remarks").select("body, username(id)").order("id").execute().data
    assert data == [{"body": "hello", "username": {"id": 1}}, {"body": "hi", "username": {"id": 2}}]
