"""What a trial produces: the column names of every table (`schema`) and how
rows, curves and tables are written and read (`store`)."""
