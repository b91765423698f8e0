"""How the kit's reference checkpoints are made: training through the exact lowerings, linear probes."""
