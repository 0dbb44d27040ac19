-- The robust cells as (label, attribute value) pairs, from spurspec.metrics.cells.ROBUST_CELLS
-- (bound as two parallel lists, so the definition lives in Python once).
CREATE OR REPLACE TEMP TABLE robust_cells AS
SELECT CAST(unnest($labels::INTEGER[]) AS INTEGER) AS label, CAST(unnest($values::INTEGER[]) AS INTEGER) AS value;
