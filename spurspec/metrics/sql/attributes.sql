-- Spurious attributes in long form (image_id, attribute, value); NULL (unknown) values drop out.
-- {columns} is replaced by validated, quoted column names of the manifest's spurious attributes.
CREATE OR REPLACE TEMP TABLE attrs AS
SELECT image_id, attribute, CAST(value AS INTEGER) AS value
FROM (UNPIVOT (SELECT image_id, {columns} FROM manifest) ON {columns} INTO NAME attribute VALUE value);
