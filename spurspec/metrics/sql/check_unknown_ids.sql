-- Prediction ids that are not in the dataset manifest: how many, and the first few by name.
SELECT count(*) AS n_unknown, list(image_id ORDER BY image_id)[1:5] AS examples
FROM (SELECT DISTINCT image_id FROM preds) AS p
WHERE image_id NOT IN (SELECT image_id FROM manifest);
