"""supabase-py against forge-server's /rest/v1: aggregates beside and inside embeds,
compared with the same grouping in SQL.

Run through compat/run.sh, which applies compat/schema.sql.
"""

from __future__ import annotations

import json
import time

import pytest
from postgrest import APIError

from forge_compat import ANON_KEY, client, sql_rows

anon = client(ANON_KEY)


def _sorted(rows):
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))


@pytest.fixture(scope="module", autouse=True)
def _tables_loaded():
    # schema.sql's sections land after the server's first schema load: wait for this one.
    deadline = time.monotonic() + 15
    while True:
        try:
            anon.table("agg_messages").select("id").limit(1).execute()
            return
        except APIError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_sum_beside_an_embed_groups_by_the_embed():
    data = anon.table("agg_messages").select("score.sum(), agg_channels(slug)").execute().data
    expected = sql_rows(
        "select sum(m.score)::int as sum, json_build_object('slug', c.slug) as agg_channels "
        "from agg_messages m join agg_channels c on c.id = m.channel_id group by c.slug"
    )
    assert _sorted(data) == _sorted(expected)


def test_count_beside_two_embeds_and_a_spread():
    data = anon.table("agg_messages").select("agg_channels(slug), agg_users(username), count()").execute().data
    expected = sql_rows(
        "select json_build_object('slug', c.slug) as agg_channels, "
        "json_build_object('username', u.username) as agg_users, count(*)::int as count "
        "from agg_messages m join agg_channels c on c.id = m.channel_id join agg_users u on u.id = m.user_id "
        "group by c.slug, u.username"
    )
    assert _sorted(data) == _sorted(expected)
    spread = anon.table("agg_messages").select("score.max(), ...agg_channels(slug)").execute().data
    spread_expected = sql_rows(
        "select max(m.score) as max, c.slug from agg_messages m join agg_channels c on c.id = m.channel_id group by c.slug"
    )
    assert _sorted(spread) == _sorted(spread_expected)


def test_count_inside_an_embed_that_embeds_again():
    data = (
        anon.table("agg_channels")
        .select("slug, agg_messages(count(), agg_users(username))")
        .eq("slug", "general")
        .execute()
        .data
    )
    expected = sql_rows(
        "select json_build_object('username', u.username) as agg_users, count(*)::int as count "
        "from agg_messages m join agg_users u on u.id = m.user_id where m.channel_id = 1 group by u.username"
    )
    assert len(data) == 1
    assert _sorted(data[0]["agg_messages"]) == _sorted(expected)


def test_spread_aggregates_are_the_parents():
    data = anon.table("agg_messages").select("user_id, ...agg_channels(id.count())").execute().data
    expected = sql_rows(
        "select m.user_id, count(c.id)::int as count from agg_messages m "
        "left join agg_channels c on c.id = m.channel_id group by m.user_id"
    )
    assert _sorted(data) == _sorted(expected)
    by_slug = anon.table("agg_messages").select("...agg_channels(slug, id.count())").execute().data
    by_slug_expected = sql_rows(
        "select c.slug, count(c.id)::int as count from agg_messages m "
        "join agg_channels c on c.id = m.channel_id group by c.slug"
    )
    assert _sorted(by_slug) == _sorted(by_slug_expected)
