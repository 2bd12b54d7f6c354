"""What outlives a run: the history, recordings and their replay, exports and charts."""
