"""From results tables to conclusions: reading results directories (`load`),
comparisons with the baseline (`compare`), the paper's claims (`claims`) and
leaderboards (`leaderboard`)."""
