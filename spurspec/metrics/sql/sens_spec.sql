-- Sensitivity and specificity on the evaluated split at each summary's validation threshold.
SELECT t.summary, t.threshold,
       count(*) FILTER (WHERE o.label = 1) AS n_pos,
       count(*) FILTER (WHERE o.label = 0) AS n_neg,
       CASE WHEN t.threshold IS NOT NULL THEN
           count(*) FILTER (WHERE o.label = 1 AND o.score >= t.threshold)
             / nullif(count(*) FILTER (WHERE o.label = 1), 0) END AS sensitivity,
       CASE WHEN t.threshold IS NOT NULL THEN
           count(*) FILTER (WHERE o.label = 0 AND o.score < t.threshold)
             / nullif(count(*) FILTER (WHERE o.label = 0), 0) END AS specificity,
       t.reason AS threshold_reason
FROM thresholds AS t
LEFT JOIN subsets AS o ON o.summary = t.summary AND o.subset = 'overall'
GROUP BY t.summary, t.threshold, t.reason
ORDER BY t.summary;
