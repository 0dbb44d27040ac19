-- Every evaluated image in every subset a metric is computed on:
--   overall              all rows of the evaluated split
--   robust (per a)       the robust cells of spurspec.metrics.cells (ROBUST_CELLS), loaded into
--                        the `robust_cells` table (label, value) with bound values: one definition
--   attr0 / attr1        the rows with a=0 / a=1
CREATE OR REPLACE TEMP TABLE subsets AS
SELECT summary, 'overall' AS subset, CAST(NULL AS VARCHAR) AS attribute, image_id, patient_id, label, score
FROM scored WHERE role = 'eval'
UNION ALL
SELECT s.summary, CASE WHEN a.value = 0 THEN 'attr0' ELSE 'attr1' END,
       a.attribute, s.image_id, s.patient_id, s.label, s.score
FROM scored AS s
JOIN attrs AS a USING (image_id)
WHERE s.role = 'eval'
UNION ALL
SELECT s.summary, 'robust', a.attribute, s.image_id, s.patient_id, s.label, s.score
FROM scored AS s
JOIN attrs AS a USING (image_id)
JOIN robust_cells AS c ON c.label = s.label AND c.value = a.value
WHERE s.role = 'eval';
