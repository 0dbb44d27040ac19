-- Predictions joined to the manifest by image_id. `role` is 'eval' (the split being scored) or
-- 'val' (rows that only choose the operating threshold).
CREATE OR REPLACE TEMP TABLE scored AS
SELECT p.summary, p.role, p.image_id, m.patient_id, CAST(m.label AS INTEGER) AS label, CAST(p.score AS DOUBLE) AS score
FROM preds AS p
JOIN manifest AS m USING (image_id);
