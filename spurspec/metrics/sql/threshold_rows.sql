-- The chosen thresholds (made by threshold.sql) with the validation counts behind them.
SELECT summary, threshold, val_sensitivity, val_specificity, n_pos, n_neg, reason
FROM thresholds
ORDER BY summary;
