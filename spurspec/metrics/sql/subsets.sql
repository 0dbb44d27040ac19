-- Every evaluated image in every subset a metric is computed on:
--   overall              all rows of the evaluated split
--   robust (per a)       {label=1, a=0} U {label=0, a=1}: the cells where the attribute misleads
--   attr0 / attr1        the rows with a=0 / a=1
CREATE OR REPLACE TEMP TABLE subsets AS
SELECT summary, 'overall' AS subset, CAST(NULL AS VARCHAR) AS attribute, image_id, patient_id, label, score
FROM scored WHERE role = 'eval'
UNION ALL
SELECT s.summary,
       CASE WHEN t.kind = 'robust' THEN 'robust' WHEN a.value = 0 THEN 'attr0' ELSE 'attr1' END,
       a.attribute, s.image_id, s.patient_id, s.label, s.score
FROM scored AS s
JOIN attrs AS a USING (image_id)
CROSS JOIN (VALUES ('robust'), ('within')) AS t(kind)
WHERE s.role = 'eval'
  AND (t.kind = 'within' OR (s.label = 1 AND a.value = 0) OR (s.label = 0 AND a.value = 1));
