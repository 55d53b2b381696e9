"""The ground floor of suite/: user-facing errors, atomic files, the JSON encoding,
statistics and table rendering. Depends on nothing else in normbench but methods/."""
