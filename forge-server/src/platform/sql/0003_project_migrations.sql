-- Which migrations a project's database has (`owner:version` of each crate's latest), so a
-- project made by an older build is migrated when this build first opens it.
alter table forge.projects add column migrations text;

-- Each project's owner role (`forge_<ref>`): `database/query` logs in as it, never as the
-- cluster's superuser. Its password is sealed (purpose `project:<ref>:owner_password`).
alter table forge.project_secrets add column owner_password bytea;
