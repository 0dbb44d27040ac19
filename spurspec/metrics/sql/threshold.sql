-- The operating threshold of each summarising function, chosen on the validation rows only.
-- A score >= threshold is called positive. $rule 'youden' maximises sensitivity + specificity - 1
-- (ties: the highest threshold); 'sensitivity' takes the highest threshold whose validation
-- sensitivity is at least $target.
CREATE OR REPLACE TEMP TABLE thresholds AS
WITH levels AS (
    SELECT summary, score,
           count(*) FILTER (WHERE label = 1) AS pos_l,
           count(*) FILTER (WHERE label = 0) AS neg_l
    FROM scored WHERE role = 'val'
    GROUP BY summary, score
), cum AS (
    SELECT summary, score,
           sum(pos_l) OVER (PARTITION BY summary ORDER BY score DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS pos_at_or_above,
           sum(neg_l) OVER (PARTITION BY summary ORDER BY score ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS neg_below,
           sum(pos_l) OVER (PARTITION BY summary) AS n_pos,
           sum(neg_l) OVER (PARTITION BY summary) AS n_neg
    FROM levels
), rates AS (
    SELECT summary, score, n_pos, n_neg,
           pos_at_or_above / n_pos AS sens,
           coalesce(neg_below, 0) / n_neg AS spec
    FROM cum
    WHERE n_pos > 0 AND n_neg > 0
), chosen AS (
    SELECT summary, score AS threshold, sens AS val_sensitivity, spec AS val_specificity
    FROM rates
    WHERE $rule = 'youden' OR sens >= $target
    QUALIFY row_number() OVER (
        PARTITION BY summary
        ORDER BY CASE WHEN $rule = 'youden' THEN sens + spec ELSE 0 END DESC, score DESC
    ) = 1
), val_counts AS (
    SELECT summary, count(*) FILTER (WHERE label = 1) AS n_pos, count(*) FILTER (WHERE label = 0) AS n_neg
    FROM scored WHERE role = 'val' GROUP BY summary
)
SELECT s.summary, c.threshold, c.val_sensitivity, c.val_specificity,
       coalesce(v.n_pos, 0) AS n_pos, coalesce(v.n_neg, 0) AS n_neg,
       CASE WHEN v.summary IS NULL THEN 'no validation predictions to choose a threshold on'
            WHEN v.n_pos = 0 THEN 'no positive validation images to choose a threshold on'
            WHEN v.n_neg = 0 THEN 'no negative validation images to choose a threshold on'
       END AS reason
FROM (SELECT DISTINCT summary FROM preds) AS s
LEFT JOIN chosen AS c USING (summary)
LEFT JOIN val_counts AS v USING (summary)
ORDER BY s.summary;
