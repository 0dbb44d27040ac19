-- Every (summary, subset, attribute) a metric row must exist for, even when the subset is empty.
CREATE OR REPLACE TEMP TABLE expected AS
WITH summaries AS (SELECT DISTINCT summary FROM preds),
     attributes AS (SELECT unnest($attributes::VARCHAR[]) AS attribute),
     cells AS (
         SELECT 'overall' AS subset, CAST(NULL AS VARCHAR) AS attribute
         UNION ALL
         SELECT k.subset, a.attribute
         FROM attributes AS a CROSS JOIN (VALUES ('robust'), ('attr0'), ('attr1')) AS k(subset)
     )
SELECT s.summary, c.subset, c.attribute FROM summaries AS s CROSS JOIN cells AS c;
