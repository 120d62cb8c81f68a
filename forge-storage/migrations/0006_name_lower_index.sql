-- Listing a folder (`POST /object/list`) matches names case-insensitively (`ilike`), which no
-- index serves: it also bounds its scan by a range of `lower(name)` in byte order, which this
-- index serves, so a folder lists at the same cost however many other objects its bucket
-- holds. The same index as Supabase Storage's (its migration 0051).
create index if not exists idx_objects_bucket_id_name_lower
  on storage.objects (bucket_id, (lower(name) collate "C"));
