"""The platform, as a customer drives it from Python: the Management API through the client
openapi-python-client generated from the live OpenAPI document (compat/management-clients.sh
writes it to $FORGE_MANAGEMENT_DIR/python), and the new project's data through supabase-py.

Lists the organizations, creates a project in `default`, reads its keys, makes a table with RLS,
policies and grants through database/query, inserts and reads rows with supabase-py and
compares them with SQL, then deletes the project. Run through compat/run.sh, which exports
FORGE_URL, FORGE_ACCESS_TOKEN (a personal access token) and FORGE_MANAGEMENT_DIR.
"""

from __future__ import annotations

import os
import sys
import uuid
from http import HTTPStatus
from typing import Any

import httpx
import pytest
from postgrest import APIError
from supabase import ClientOptions, create_client


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run the suite through compat/run.sh")
    return value


SERVER = _env("FORGE_URL")
sys.path.insert(0, os.path.join(_env("FORGE_MANAGEMENT_DIR"), "python"))

from forge_management_api import AuthenticatedClient  # noqa: E402
from forge_management_api.api.api_keys import v1_get_project_api_key, v1_get_project_api_keys  # noqa: E402
from forge_management_api.api.database import v1_run_a_query  # noqa: E402
from forge_management_api.api.organizations import (  # noqa: E402
    v1_get_an_organization,
    v1_list_all_organizations,
)
from forge_management_api.api.projects import (  # noqa: E402
    v1_create_a_project,
    v1_delete_a_project,
    v1_get_project,
    v1_list_all_projects,
)
from forge_management_api.models import (  # noqa: E402
    ApiKey,
    CreateProject,
    DeletedProject,
    ErrorBody,
    OrganizationDetail,
    Project,
    RunQuery,
)


@pytest.fixture(scope="module")
def api() -> AuthenticatedClient:
    # Creating a project clones its database: more than httpx's default 5 s on a slow machine.
    with AuthenticatedClient(
        base_url=SERVER,
        token=_env("FORGE_ACCESS_TOKEN"),
        timeout=httpx.Timeout(120.0),
        raise_on_unexpected_status=True,
    ) as client:
        yield client


def sql(api: AuthenticatedClient, ref: str, query: str) -> list[dict[str, Any]]:
    """`database/query` through the generated client: the rows of the last statement."""
    res = v1_run_a_query.sync_detailed(ref, client=api, body=RunQuery(query=query))
    assert res.status_code == HTTPStatus.OK, res.content
    assert isinstance(res.parsed, list)
    return [row.to_dict() for row in res.parsed]


@pytest.fixture(scope="module")
def project(api: AuthenticatedClient):
    """A new project in `default`, deleted afterwards if a test left it."""
    name = f"compat py {uuid.uuid4().hex[:8]}"
    res = v1_create_a_project.sync_detailed(
        client=api, body=CreateProject(name=name, organization_id="default", region="local")
    )
    assert res.status_code == HTTPStatus.CREATED, res.content
    assert isinstance(res.parsed, Project)
    assert res.parsed.name == name
    yield res.parsed
    v1_delete_a_project.sync_detailed(res.parsed.ref, client=api)


@pytest.fixture(scope="module")
def keys(api: AuthenticatedClient, project: Project) -> dict[str, ApiKey]:
    res = v1_get_project_api_keys.sync_detailed(project.ref, client=api, reveal=True)
    assert res.status_code == HTTPStatus.OK, res.content
    assert isinstance(res.parsed, list)
    return {k.kind: k for k in res.parsed}


def test_the_caller_belongs_to_the_default_organization(api: AuthenticatedClient) -> None:
    orgs = v1_list_all_organizations.sync(client=api)
    assert isinstance(orgs, list)
    assert any(o.slug == "default" and o.id == "default" for o in orgs), orgs
    org = v1_get_an_organization.sync("default", client=api)
    assert isinstance(org, OrganizationDetail)
    assert org.role_name == "Owner"


def test_a_new_project_is_active_at_its_own_url(api: AuthenticatedClient, project: Project) -> None:
    assert project.organization_slug == "default"
    assert project.status == "ACTIVE_HEALTHY"
    assert project.url == f"{SERVER}/p/{project.ref}"
    got = v1_get_project.sync(project.ref, client=api)
    assert isinstance(got, Project)
    assert got.to_dict() == project.to_dict()
    listed = v1_list_all_projects.sync(client=api)
    assert isinstance(listed, list)
    assert project.ref in [p.ref for p in listed]


def test_its_api_keys_are_revealed_to_the_owner(
    api: AuthenticatedClient, project: Project, keys: dict[str, ApiKey]
) -> None:
    assert sorted(keys) == ["legacy_anon", "legacy_service_role", "publishable", "secret"]
    assert all(isinstance(k.api_key, str) and k.api_key for k in keys.values())
    anon = keys["legacy_anon"]
    assert (anon.role, anon.type_) == ("anon", "legacy")
    one = v1_get_project_api_key.sync(project.ref, anon.id, client=api)
    assert isinstance(one, ApiKey)
    assert one.api_key == anon.api_key


def test_rows_written_with_supabase_py_are_what_sql_sees(
    api: AuthenticatedClient, project: Project, keys: dict[str, ApiKey]
) -> None:
    made = sql(
        api,
        project.ref,
        """
        create table public.notes (
          id bigint generated always as identity primary key,
          body text not null,
          visible boolean not null default true
        );
        alter table public.notes enable row level security;
        create policy "anon reads visible notes" on public.notes for select to anon using (visible);
        create policy "anon adds visible notes" on public.notes for insert to anon with check (visible);
        grant select, insert on public.notes to anon;
        insert into public.notes (body, visible) values ('hidden from anon', false);
        select count(*) as n from public.notes
        """,
    )
    assert made == [{"n": 1}]

    anon_key = keys["legacy_anon"].api_key
    assert isinstance(anon_key, str)
    supabase = create_client(project.url, anon_key, ClientOptions(auto_refresh_token=False, persist_session=False))
    inserted = (
        supabase.table("notes")
        .insert([{"body": "from supabase-py"}, {"body": "and another"}])
        .execute()
    )
    assert [(r["body"], r["visible"]) for r in inserted.data] == [("from supabase-py", True), ("and another", True)]

    # The policy refuses a row anon could not see.
    with pytest.raises(APIError) as refused:
        supabase.table("notes").insert({"body": "sneaky", "visible": False}).execute()
    assert refused.value.code == "42501"

    read = supabase.table("notes").select("id, body").order("id").execute()
    rows = sql(api, project.ref, "select id, body, visible from public.notes order by id")
    assert len(rows) == 3, rows
    visible = [{"id": r["id"], "body": r["body"]} for r in rows if r["visible"]]
    assert read.data == visible
    assert [r["id"] for r in inserted.data] == [r["id"] for r in visible]

    # The publishable key opens the same project.
    publishable = keys["publishable"].api_key
    assert isinstance(publishable, str)
    again = create_client(project.url, publishable, ClientOptions(auto_refresh_token=False, persist_session=False))
    assert again.table("notes").select("id, body").order("id").execute().data == visible


def test_a_deleted_project_is_gone(api: AuthenticatedClient, project: Project) -> None:
    deleted = v1_delete_a_project.sync(project.ref, client=api)
    assert isinstance(deleted, DeletedProject)
    assert deleted.ref == project.ref
    gone = v1_get_project.sync_detailed(project.ref, client=api)
    assert gone.status_code == HTTPStatus.NOT_FOUND
    assert isinstance(gone.parsed, ErrorBody)
    assert gone.parsed.code == "not_found"
    listed = v1_list_all_projects.sync(client=api)
    assert isinstance(listed, list)
    assert project.ref not in [p.ref for p in listed]
