-- Spurious attributes must be 0, 1 or NULL (unknown); anything else would silently drop rows.
SELECT attribute, value, count(*) AS n
FROM attrs
WHERE value NOT IN (0, 1)
GROUP BY attribute, value
ORDER BY attribute, value
LIMIT 5;
