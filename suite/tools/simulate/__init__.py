"""`normbench simulate`: the paper's norm-dynamics simulations on free embeddings.

`dynamics` holds the science (pure torch functions), `report` the CSV/PNG/table
output and `cli` the command. Importing this package imports no torch, so
registering the command keeps `normbench --help` instant.
"""
