"""supabase-py against forge-server's /rest/v1: computed fields (functions of a table's row,
selected, filtered and ordered like columns; issue 13, item 1) and functions returning one row
of a table, shaped by select, embeds and filters (issue 13, item 3), and functions of a row
returning rows of a table, embedded like relationships (issue 13, item 2).

Each answer is compared with the same query in SQL, where `row.fn` is `fn(row)`. Run through
compat/run.sh, which applies the "computed fields" section of compat/schema.sql.
"""

from __future__ import annotations

from forge_compat import ANON_KEY, client, fails, last_request, last_response, sql_exec, sql_one, sql_rows

anon = client(ANON_KEY)


def test_computed_fields_selected_renamed_cast_and_navigated_not_in_star():
    data = (
        anon.table("cf_people")
        .select("id, cf_full_name, age:cf_age::text, first:cf_initials->>first")
        .order("id")
        .execute()
        .data
    )
    assert data == sql_rows(
        "select id, cf_full_name(p), cf_age(p)::text as age, cf_initials(p)->>'first' as first"
        " from cf_people p order by id"
    )
    assert data[0] == {"id": 1, "cf_full_name": "Ada Lovelace", "age": "185", "first": "A"}
    star = anon.table("cf_people").select("*").order("id").execute().data
    assert star == sql_rows("select * from cf_people order by id")
    assert "cf_full_name" not in star[0]


def test_computed_fields_filtered_and_ordered():
    data = (
        anon.table("cf_people").select("id, cf_full_name").gt("cf_age", 90).order("cf_full_name", desc=True).execute().data
    )
    assert data == sql_rows(
        "select id, cf_full_name(p) from cf_people p where cf_age(p) > 90 order by cf_full_name(p) desc"
    )
    assert [r["id"] for r in data] == [3, 1]
    either = anon.table("cf_people").select("id").or_("cf_full_name.eq.Alan Turing,cf_age.gte.180").order("id").execute()
    assert either.data == sql_rows(
        "select id from cf_people p where cf_full_name(p) = 'Alan Turing' or cf_age(p) >= 180 order by id"
    )
    assert anon.table("cf_people").select("id").ilike("cf_full_name", "%hopper").execute().data == [{"id": 3}]


def test_computed_fields_inside_embeds():
    data = (
        anon.table("cf_teams")
        .select("name, cf_size, cf_people(cf_full_name, cf_label)")
        .like("cf_people.cf_full_name", "A%")
        .order("cf_full_name", desc=True, foreign_table="cf_people")
        .order("id")
        .execute()
        .data
    )
    assert data == sql_rows(
        "select t.name, cf_size(t),"
        " coalesce((select json_agg(x) from (select cf_full_name(p), cf_label(p) from cf_people p"
        "   where p.team_id = t.id and cf_full_name(p) like 'A%' order by cf_full_name(p) desc) x), '[]') as cf_people"
        " from cf_teams t order by t.id"
    )
    assert [p["cf_label"] for p in data[0]["cf_people"]] == ["person 2", "person 1"]


def test_computed_field_overloads_are_per_table():
    teams = anon.table("cf_teams").select("id, cf_label").order("id").execute().data
    assert teams == sql_rows("select id, cf_label(t) from cf_teams t order by id")
    assert teams[1] == {"id": 2, "cf_label": "team blue"}
    assert anon.table("cf_people").select("cf_label").eq("id", 1).execute().data == [{"cf_label": "person 1"}]


def test_computed_fields_on_function_results_and_written_rows():
    called = anon.rpc("cf_everyone", {}).select("id, cf_full_name").like("cf_full_name", "A%").order("cf_age").execute()
    assert called.data == sql_rows(
        "select id, cf_full_name(p) from cf_everyone() p where cf_full_name(p) like 'A%' order by cf_age(p)"
    )
    try:
        inserted = (
            anon.table("cf_people")
            .insert({"id": 5, "first_name": "Barbara", "last_name": "Liskov", "team_id": 2, "born": 1939})
            .execute()
        )
        assert inserted.data == sql_rows("select * from cf_people where id = 5")
        updated = (
            anon.table("cf_people")
            .update({"first_name": "B."})
            .eq("cf_full_name", "Barbara Liskov")
            .execute()
        )
        assert updated.data == sql_rows("select * from cf_people where id = 5")
        assert updated.data[0]["first_name"] == "B."
        selected = anon.table("cf_people").select("cf_full_name, cf_label").eq("cf_full_name", "B. Liskov").execute()
        assert selected.data == [{"cf_full_name": "B. Liskov", "cf_label": "person 5"}]
    finally:
        sql_exec("delete from cf_people where id = 5")


def test_computed_fields_through_the_extra_search_path_and_not_beyond():
    memos = anon.schema("compat_api").table("memos").select("id, cf_memo_words").order("id").execute().data
    assert memos == sql_rows("select id, public.cf_memo_words(m) from compat_api.memos m order by id")
    err = fails(lambda: anon.table("cf_people").select("id, cf_secret").execute(), 400, "42703")
    assert err.message == "column cf_people.cf_secret does not exist"


def test_one_row_function_shaped_by_select_embeds_and_computed_fields():
    res = anon.rpc("cf_person", {"pid": 1}).select("id, cf_full_name, team:cf_teams(name, cf_size)").execute()
    assert res.data == sql_one(
        "select p.id, cf_full_name(p), (select row_to_json(x) from (select t.name, cf_size(t) from cf_teams t"
        " where t.id = p.team_id) x) as team from cf_person(1) p"
    )
    assert res.data == {"id": 1, "cf_full_name": "Ada Lovelace", "team": {"name": "red", "cf_size": 2}}
    team = (
        anon.rpc("cf_team", {"tid": 2}, get=True)
        .select("name, cf_people(first_name, cf_age)")
        .execute()
    )
    assert last_request().method == "GET"
    assert team.data == {"name": "blue", "cf_people": [{"first_name": "Grace", "cf_age": 94}]}
    assert anon.rpc("cf_person", {"pid": 3}).execute().data == sql_one("select * from cf_person(3)")


def test_one_row_function_filtered_out_is_null():
    kept = anon.rpc("cf_person", {"pid": 2}).select("id").eq("first_name", "Alan").execute()
    assert kept.data == {"id": 2}
    gone = anon.rpc("cf_person", {"pid": 2}).select("id").eq("cf_label", "person 1").execute()
    assert last_response().status_code == 200
    assert gone.data is None
    single = anon.rpc("cf_person", {"pid": 2}).select("cf_label").single().execute()
    assert last_request().headers["accept"] == "application/vnd.pgrst.object+json"
    assert single.data == {"cf_label": "person 2"}


def test_computed_relationships_to_one_and_to_many():
    people = anon.table("cf_people").select("id, team:cf_team_of(name, cf_size)").order("id").execute().data
    assert people == sql_rows(
        "select p.id, (select row_to_json(x) from (select t.name, cf_size(t) from cf_team_of(p) t) x) as team"
        " from cf_people p order by p.id"
    )
    assert people[0] == {"id": 1, "team": {"name": "red", "cf_size": 2}}
    teams = (
        anon.table("cf_teams")
        .select("name, members:cf_members(first_name)")
        .order("first_name", desc=True, foreign_table="members")
        .order("id")
        .execute()
        .data
    )
    assert teams == sql_rows(
        "select t.name, coalesce((select json_agg(x) from (select m.first_name from cf_members(t) m"
        " order by m.first_name desc) x), '[]') as members from cf_teams t order by t.id"
    )


def test_computed_relationships_inner_and_on_function_results():
    teams = anon.table("cf_teams").select("id, members:cf_members!inner(id)").eq("members.cf_age", 185).execute()
    assert teams.data == [{"id": 1, "members": [{"id": 1}]}]
    called = anon.rpc("cf_everyone", {}).select("id, team:cf_team_of(name)").gt("id", 1).order("id").execute()
    assert called.data == sql_rows(
        "select p.id, (select row_to_json(x) from (select t.name from cf_team_of(p) t) x) as team"
        " from cf_everyone() p where p.id > 1 order by p.id"
    )
