-- Known attribute values of the evaluated rows of one summarising function.
SELECT s.image_id, a.attribute, a.value
FROM scored AS s
JOIN attrs AS a USING (image_id)
WHERE s.role = 'eval' AND s.summary = $summary;
