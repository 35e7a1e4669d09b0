-- prext PostgreSQL schema, version 10: fewer indexes to maintain per write, cheaper ANALYZE.
--
-- objects_namespace (cluster, namespace, resource) is redundant: every query that could search
-- it searches an index it leads: the key (cluster, resource, namespace, name) when it names
-- the resource (lists, gets, counts per resource), objects_order (cluster, namespace, name,
-- resource) when it names only the namespace (result queries). objects_scope (cluster,
-- scope_kind, scope_namespace, scope_name) serves no query prext sends: the scope columns are
-- only written (result rows carry the subject). Each index cost every create and every update
-- that is not HOT an index insertion.
DROP INDEX IF EXISTS objects_namespace;
DROP INDEX IF EXISTS objects_scope;

-- No statistics for columns the planner never estimates from: results.properties is only read
-- through `->`/`->>` expressions (their selectivity does not use the column's statistics),
-- results.resources and objects.body are never compared. Sorting and comparing their values
-- was half of the ANALYZE of `results` that prext starts as the tables grow (statistics.rs),
-- on result rows of varied properties.
ALTER TABLE results ALTER COLUMN properties SET STATISTICS 0,
                    ALTER COLUMN resources SET STATISTICS 0;
ALTER TABLE objects ALTER COLUMN body SET STATISTICS 0;
