"""Data below the Trainer: datasets of features, batches with dynamic padding, collators, BERT's masking, a
feature cache, and the data files shipped with the package (sst2/, squad/, movie_reviews/ beside this file)."""
