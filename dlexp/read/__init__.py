"""Reading runs back from their directories: runs and statuses, event files, tables, evidence over seeds, diffs,
figures, TensorBoard. Nothing here needs the code that wrote them."""
