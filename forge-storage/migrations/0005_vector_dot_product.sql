-- Vector indexes may also use the `dotproduct` distance metric (storage-js' DistanceMetric).
alter table storage.vector_indexes drop constraint if exists vector_indexes_distance_metric_check;
alter table storage.vector_indexes add constraint vector_indexes_distance_metric_check
  check (distance_metric in ('cosine', 'euclidean', 'dotproduct'));
