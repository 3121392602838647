"""Recipe sweeps on the demos' data, the tweets classifier and the causal LM's GKD, through the API."""
