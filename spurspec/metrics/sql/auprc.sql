-- Average precision over the evaluated split (as sklearn's average_precision_score): thresholds at
-- each distinct score, high to low; AP = sum over levels of (positives at the level / n_pos) x
-- precision at or above the level.
WITH levels AS (
    SELECT summary, score,
           count(*) FILTER (WHERE label = 1) AS pos_l,
           count(*) FILTER (WHERE label = 0) AS neg_l
    FROM subsets WHERE subset = 'overall'
    GROUP BY summary, score
), cum AS (
    SELECT summary, pos_l,
           sum(pos_l) OVER w AS tp,
           sum(neg_l) OVER w AS fp
    FROM levels
    WINDOW w AS (PARTITION BY summary ORDER BY score DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
), agg AS (
    SELECT summary, sum(pos_l) AS n_pos, sum(pos_l * tp / (tp + fp)) AS ap_num
    FROM cum GROUP BY summary
), counts AS (
    SELECT summary, count(*) FILTER (WHERE label = 1) AS n_pos, count(*) FILTER (WHERE label = 0) AS n_neg
    FROM subsets WHERE subset = 'overall' GROUP BY summary
)
SELECT e.summary, coalesce(c.n_pos, 0) AS n_pos, coalesce(c.n_neg, 0) AS n_neg,
       CASE WHEN c.n_pos > 0 AND c.n_neg > 0 THEN a.ap_num / a.n_pos END AS value,
       CASE WHEN coalesce(c.n_pos, 0) = 0 THEN 'no positive images'
            WHEN coalesce(c.n_neg, 0) = 0 THEN 'no negative images' END AS reason
FROM expected AS e
LEFT JOIN agg AS a USING (summary)
LEFT JOIN counts AS c USING (summary)
WHERE e.subset = 'overall'
ORDER BY e.summary;
