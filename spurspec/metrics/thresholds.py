"""Operating-threshold rules. The threshold is chosen on the validation split only (threshold.sql)
and then applied unchanged to the evaluated split, so sensitivity and specificity are honest:
  youden            maximise sensitivity + specificity - 1 on validation (ties: highest threshold)
  sensitivity:X     the highest threshold reaching validation sensitivity >= X (0 < X <= 1)"""

from __future__ import annotations

from spurspec.errors import ConfigError


def parse_rule(rule: str) -> tuple[str, float]:
    """('youden', 0.0) or ('sensitivity', X): the parameters threshold.sql binds."""
    text = rule.strip().lower()
    if text == "youden":
        return "youden", 0.0
    if text.startswith("sensitivity:"):
        try:
            target = float(text.split(":", 1)[1])
        except ValueError:
            target = -1.0
        if 0.0 < target <= 1.0:
            return "sensitivity", target
    raise ConfigError(f"threshold rule {rule!r}: use 'youden' or 'sensitivity:X' with 0 < X <= 1")
