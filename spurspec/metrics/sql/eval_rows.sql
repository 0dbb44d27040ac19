-- The evaluated rows of one summarising function, for the bootstrap (image order fixed by id).
SELECT image_id, patient_id, label, score
FROM scored
WHERE role = 'eval' AND summary = $summary
ORDER BY image_id;
