-- A dataset without spurious attributes: an empty long table with the same columns.
CREATE OR REPLACE TEMP TABLE attrs (image_id VARCHAR, attribute VARCHAR, value INTEGER);
