"""Network builders more than one task uses (classification and faces share the ResNets)."""
