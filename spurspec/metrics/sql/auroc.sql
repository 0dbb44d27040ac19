-- AUROC as the Mann-Whitney statistic: (rank sum of positives - n_pos(n_pos+1)/2) / (n_pos n_neg),
-- tied scores sharing their mid-rank (a tie counts half), per (summary, subset, attribute).
-- One-class or empty subsets give NULL and the reason, never 0.5.
WITH ranked AS (
    SELECT summary, subset, attribute, label,
           rank() OVER (PARTITION BY summary, subset, attribute ORDER BY score)
             + (count(*) OVER (PARTITION BY summary, subset, attribute, score) - 1) / 2.0 AS mid_rank
    FROM subsets
), sums AS (
    SELECT summary, subset, attribute,
           count(*) FILTER (WHERE label = 1) AS n_pos,
           count(*) FILTER (WHERE label = 0) AS n_neg,
           sum(mid_rank) FILTER (WHERE label = 1) AS rank_sum_pos
    FROM ranked
    GROUP BY summary, subset, attribute
)
SELECT e.summary, e.subset, e.attribute,
       coalesce(s.n_pos, 0) AS n_pos,
       coalesce(s.n_neg, 0) AS n_neg,
       CASE WHEN s.n_pos > 0 AND s.n_neg > 0
            THEN (s.rank_sum_pos - s.n_pos * (s.n_pos + 1) / 2.0) / (CAST(s.n_pos AS DOUBLE) * s.n_neg)
       END AS value,
       CASE WHEN coalesce(s.n_pos, 0) = 0 AND coalesce(s.n_neg, 0) = 0 THEN 'no images in this subgroup'
            WHEN coalesce(s.n_pos, 0) = 0 THEN 'no positive images in this subgroup'
            WHEN coalesce(s.n_neg, 0) = 0 THEN 'no negative images in this subgroup'
       END AS reason
FROM expected AS e
LEFT JOIN sums AS s
  ON s.summary = e.summary AND s.subset = e.subset AND s.attribute IS NOT DISTINCT FROM e.attribute
ORDER BY e.summary, e.attribute NULLS FIRST, e.subset;
