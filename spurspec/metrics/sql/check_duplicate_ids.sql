-- An image scored twice by the same summarising function is ambiguous: count such keys, name a few.
WITH dup AS (
    SELECT image_id, summary, count(*) AS n
    FROM preds
    GROUP BY image_id, summary
    HAVING count(*) > 1
)
SELECT count(*) AS n_duplicated, list(image_id || ' (' || summary || ', ' || n || ' rows)' ORDER BY image_id, summary)[1:5] AS examples
FROM dup;
